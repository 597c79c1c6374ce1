//! apiserver-double: the one piece of kube-apiserver a joining node talks to
//! before kubeadm runs — the anonymous `kube-public/cluster-info` ConfigMap —
//! for the VM tests (tests/e2e). It serves a `kubeboot bundle`'s CA in the
//! kubeconfig, signed (detached JWS) for the bundle's bootstrap token, over TLS
//! with a server certificate the bundle's CA issues for the given names.
//!
//!   apiserver-double --bundle DIR --listen 127.0.0.1:16443 [--name 10.0.2.100]...

#[path = "../tls_server.rs"]
mod tls_server;

fn main() {
    let mut bundle = None;
    let mut listen = "127.0.0.1:0".to_string();
    let mut names = vec!["127.0.0.1".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--bundle" => bundle = Some(std::path::PathBuf::from(v())),
            "--listen" => listen = v(),
            "--name" => names.push(v()),
            _ => die(&format!("unknown argument {a}")),
        }
    }
    let bundle = bundle.unwrap_or_else(|| die("--bundle DIR is required"));
    let read = |p: &str| {
        std::fs::read_to_string(bundle.join(p))
            .unwrap_or_else(|e| die(&format!("{}: {e}", bundle.join(p).display())))
    };
    let (ca, key) = (read("pki/ca.crt"), read("pki/ca.key"));
    let discovery: toml::Value =
        toml::from_str(&read("discovery.toml")).unwrap_or_else(|e| die(&e.to_string()));
    let token = discovery["token"]
        .as_str()
        .unwrap_or_else(|| die("discovery.toml has no token"));
    let endpoint = discovery["endpoint"].as_str().unwrap_or("127.0.0.1:6443");
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = tls_server::pki_from_ca_for(&ca, &key, &name_refs);
    let body = tls_server::cluster_info_json(endpoint, &ca, Some(token));
    let addr = tls_server::serve_at(
        &pki,
        &listen,
        tls_server::CLUSTER_INFO_PATH,
        &body,
        None,
        usize::MAX,
    );
    println!("apiserver-double: serving cluster-info on https://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn die(msg: &str) -> ! {
    eprintln!("apiserver-double: {msg}");
    std::process::exit(2)
}
