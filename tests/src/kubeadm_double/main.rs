//! kubeadm-test-double: a stand-in for kubeadm on machines without the
//! Kubernetes binaries. Never part of the product. It
//! - records every call (argv and config) to `$ROOT/var/log/kubeadm-test-double/calls.jsonl`;
//! - refuses `--config` mixed with flags kubeadm refuses (ValidateMixedArguments);
//! - strictly validates the config against kubeadm's API types for its version
//!   (v1beta4 from 1.31, v1beta3 from 1.22) and the values kubeadm checks
//!   (token, CA hashes, certificate key, discovery, endpoint);
//! - fails its FileAvailable preflight like kubeadm if the node was not reset;
//! - writes the files real kubeadm writes, under `$KUBEADM_TEST_DOUBLE_ROOT`;
//! - `reset -f` removes them;
//! - fails the first `$KUBEADM_TEST_DOUBLE_FAIL_TIMES` init/join runs;
//! - on success stores what kubeadm's last phases leave in the cluster (the
//!   `kubeadm-config` ConfigMap and bootstrap RBAC on init, the Node its kubelet
//!   registers, labelled on a control plane) under `$ROOT/var/lib/kubeadm-test-double/cluster`,
//!   which the tests' API server stand-in serves (tests/src/tls_server.rs);
//! - with `KUBEADM_TEST_DOUBLE_CRASH=after-kubelet-conf`, loses power right after
//!   writing kubelet.conf: it kills its caller (the agent) and itself with SIGKILL.
//!
//! Environment: KUBEADM_TEST_DOUBLE_ROOT (required to write anything; `/` in the test image),
//! KUBEADM_TEST_DOUBLE_VERSION (default v1.34.2), KUBEADM_TEST_DOUBLE_FAIL_TIMES,
//! KUBEADM_TEST_DOUBLE_SECONDS, KUBEADM_TEST_DOUBLE_CRASH.

mod schema;
mod validate;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

struct Env {
    root: Option<PathBuf>,
    version: String,
    fail_times: u32,
    /// How long init and join take (`KUBEADM_TEST_DOUBLE_SECONDS`), printing nothing
    /// meanwhile: a slow host, or real kubeadm waiting for its control plane.
    seconds: u64,
    /// `after-kubelet-conf`: power loss right after kubelet.conf is written.
    crash: Option<String>,
}

impl Env {
    fn read() -> Env {
        Env {
            root: std::env::var_os("KUBEADM_TEST_DOUBLE_ROOT").map(PathBuf::from),
            version: std::env::var("KUBEADM_TEST_DOUBLE_VERSION")
                .unwrap_or_else(|_| "v1.34.2".into()),
            fail_times: std::env::var("KUBEADM_TEST_DOUBLE_FAIL_TIMES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            seconds: std::env::var("KUBEADM_TEST_DOUBLE_SECONDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            crash: std::env::var("KUBEADM_TEST_DOUBLE_CRASH").ok(),
        }
    }
    fn minor(&self) -> u32 {
        self.version
            .trim_start_matches('v')
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
    fn path(&self, node_path: &str) -> PathBuf {
        self.root
            .as_ref()
            .expect("checked")
            .join(node_path.trim_start_matches('/'))
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let env = Env::read();
    let result = match argv.first().map(String::as_str) {
        Some("version") => {
            if argv.iter().any(|a| a == "short") {
                println!("{}", env.version);
            } else {
                println!(
                    "kubeadm version: &version.Info{{GitVersion:\"{}\", (kubeadm-test-double)}}",
                    env.version
                );
            }
            Ok(())
        }
        Some(cmd @ ("init" | "join")) => with_root(&env, |env| init_or_join(env, cmd, &argv)),
        Some("reset") => with_root(&env, |env| reset(env, &argv)),
        Some("config") if argv.get(1).map(String::as_str) == Some("validate") => {
            validate_only(&env, &argv)
        }
        _ => Err(format!("kubeadm-test-double: unsupported command {argv:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn with_root(env: &Env, f: impl FnOnce(&Env) -> Result<(), String>) -> Result<(), String> {
    if env.root.is_none() {
        return Err(
            "kubeadm-test-double: set KUBEADM_TEST_DOUBLE_ROOT; refusing to write to the real /"
                .into(),
        );
    }
    f(env)
}

fn record(env: &Env, entry: Value) {
    let dir = env.path("/var/log/kubeadm-test-double");
    fs::create_dir_all(&dir).expect("record dir");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("calls.jsonl"))
        .expect("record file");
    writeln!(f, "{entry}").expect("record");
    // In the test image (KUBEADM_TEST_DOUBLE_CONSOLE=1) each call is also one console
    // line, so a VM test can count calls from the serial log. Never the config: it holds secrets.
    if std::env::var_os("KUBEADM_TEST_DOUBLE_CONSOLE").is_some() {
        let what = entry["argv"][0]
            .as_str()
            .or(entry["event"].as_str())
            .unwrap_or("?");
        if let Ok(mut console) = fs::OpenOptions::new().append(true).open("/dev/console") {
            let _ = writeln!(console, "kubeadm-test-double: call: {what}");
        }
    }
}

/// kubeadm's ValidateMixedArguments: with --config, only these flags (and --skip-*) may be given.
fn check_mixed_args(flags: &[String]) -> Result<(), String> {
    const ALLOWED: &[&str] = &[
        "config",
        "ignore-preflight-errors",
        "dry-run",
        "kubeconfig",
        "node-name",
        "kubeconfig-dir",
        "upload-certs",
        "print-join-command",
        "rootfs",
        "v",
        "log-file",
    ];
    let bad: Vec<&str> = flags
        .iter()
        .map(|f| f.as_str())
        .filter(|f| !ALLOWED.contains(f) && !f.starts_with("skip-"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("can not mix '--config' with arguments {bad:?}"))
    }
}

struct Parsed {
    config: Option<String>,
    flags: Vec<String>,
    positional: Vec<String>,
}

fn parse_flags(args: &[String]) -> Parsed {
    let mut p = Parsed {
        config: None,
        flags: vec![],
        positional: vec![],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(flag) = a.strip_prefix("--") {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (flag.to_string(), None),
            };
            if name == "config" {
                p.config = inline.or_else(|| it.next().cloned());
            }
            p.flags.push(name);
        } else {
            p.positional.push(a.clone());
        }
    }
    p
}

fn init_or_join(env: &Env, cmd: &str, argv: &[String]) -> Result<(), String> {
    let parsed = parse_flags(&argv[1..]);
    let config_path = parsed
        .config
        .clone()
        .ok_or("kubeadm-test-double: kubeboot always passes --config")?;
    let config_text = fs::read_to_string(&config_path)
        .map_err(|e| format!("unable to read config from {config_path:?}: {e}"))?;
    let mode = fs::metadata(&config_path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0);
    record(
        env,
        json!({ "argv": argv, "config": config_text, "config_mode": format!("{mode:o}") }),
    );
    check_mixed_args(&parsed.flags)?;
    if !parsed.positional.is_empty() {
        return Err(format!(
            "can not mix '--config' with arguments {:?}",
            parsed.positional
        ));
    }
    let docs = validate::config_for(cmd, &config_text, env.minor())?;
    preflight(env, cmd)?;
    std::thread::sleep(std::time::Duration::from_secs(env.seconds));
    let counter = env.path("/var/log/kubeadm-test-double/failures");
    let failed_so_far: u32 = fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if failed_so_far < env.fail_times {
        fs::write(&counter, (failed_so_far + 1).to_string()).map_err(|e| e.to_string())?;
        write_manifests(env)?;
        println!("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods");
        return Err("error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster (kubeadm-test-double: injected failure)".into());
    }
    match cmd {
        "init" => do_init(env, &docs, parsed.flags.iter().any(|f| f == "upload-certs"))?,
        _ => do_join(env, &docs)?,
    }
    reboot_if_asked(env);
    Ok(())
}

/// For the VM tests: when `$ROOT/etc/kubeadm-test-double/reboot-after-kubeadm`
/// exists, the first successful init/join is followed at once by a forced
/// reboot (no clean shutdown), before the agent can record that kubeadm finished.
fn reboot_if_asked(env: &Env) {
    let marker = env.path("/var/lib/kubeadm-test-double/rebooted");
    if !env
        .path("/etc/kubeadm-test-double/reboot-after-kubeadm")
        .exists()
        || marker.exists()
    {
        return;
    }
    fs::create_dir_all(marker.parent().expect("parent")).expect("marker dir");
    fs::write(&marker, "").expect("marker");
    record(env, serde_json::json!({"event": "forced-reboot"}));
    println!("kubeadm-test-double: forcing a reboot now (reboot-after-kubeadm)");
    nix::unistd::sync();
    let _ = std::process::Command::new("systemctl")
        .args(["reboot", "--force", "--force"])
        .status();
    std::thread::sleep(std::time::Duration::from_secs(600));
}

/// kubeadm's FileAvailable / DirAvailable preflight checks.
fn preflight(env: &Env, cmd: &str) -> Result<(), String> {
    let mut errors = vec![];
    for f in [
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/bootstrap-kubelet.conf",
    ] {
        if env.path(f).exists() {
            errors.push(format!(
                "\t[ERROR FileAvailable-{}]: {f} already exists",
                f.replace('/', "-")
            ));
        }
    }
    if cmd == "init"
        && env
            .path("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .exists()
    {
        errors.push("\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists".into());
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(format!(
        "error execution phase preflight: [preflight] Some fatal errors occurred:\n{}",
        errors.join("\n")
    ))
}

fn write(env: &Env, node_path: &str, content: &str, mode: u32) -> Result<(), String> {
    let p = env.path(node_path);
    fs::create_dir_all(p.parent().expect("parent")).map_err(|e| e.to_string())?;
    fs::write(&p, content).map_err(|e| format!("write {node_path}: {e}"))?;
    fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(|e| e.to_string())
}

/// A kubeconfig the agent's `ready` phase can use against the test servers
/// (tls_server.rs / apiserver-double answer `GET /api/v1/nodes/NAME` with a Ready
/// Node). Real kubeadm writes the cluster CA from cluster-info and a client
/// certificate; the double trusts any server and names a token: what real
/// kubeconfigs do is tested against the real binaries (tests/agent/real_control_plane.rs).
fn kubeconfig(endpoint: &str, user: &str) -> String {
    // A node's own credentials name the node, as the kubelet's client certificate
    // does (tls_server.rs scopes them like the Node authorizer).
    let token = match user.strip_prefix("system:node:") {
        Some(node) => format!("{NODE_TOKEN_PREFIX}{node}"),
        None => "kubeadm-test-double".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://{endpoint}\n    insecure-skip-tls-verify: true\n\
         users:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}@kubernetes\n  context: {{cluster: kubernetes, user: {user}}}\n\
         current-context: {user}@kubernetes\n# written by kubeadm-test-double\n"
    )
}

/// tls_server.rs's `NODE_TOKEN_PREFIX`: the bearer token of node credentials.
const NODE_TOKEN_PREFIX: &str = "kubeadm-test-double.node.";

/// The user of this node's kubelet.conf: `system:node:` and the Node's name.
fn node_user(env: &Env, config: &Value) -> String {
    format!("system:node:{}", node_name(env, config))
}

fn write_manifests(env: &Env) -> Result<(), String> {
    write_control_plane_manifests(env)?;
    write_etcd_manifest(env)
}

fn write_etcd_manifest(env: &Env) -> Result<(), String> {
    write(
        env,
        "/etc/kubernetes/manifests/etcd.yaml",
        "# static pod etcd (kubeadm-test-double)\n",
        0o600,
    )
}

fn write_control_plane_manifests(env: &Env) -> Result<(), String> {
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        write(
            env,
            &format!("/etc/kubernetes/manifests/{c}.yaml"),
            &format!("# static pod {c} (kubeadm-test-double)\n"),
            0o600,
        )?;
    }
    Ok(())
}

fn do_init(env: &Env, docs: &validate::Docs, upload_certs: bool) -> Result<(), String> {
    let cluster = docs.cluster.clone().unwrap_or(Value::Null);
    let init = docs.init.clone().unwrap_or(Value::Null);
    let certs_dir = cluster["certificatesDir"]
        .as_str()
        .unwrap_or("/etc/kubernetes/pki")
        .to_string();
    let endpoint = cluster["controlPlaneEndpoint"]
        .as_str()
        .unwrap_or("127.0.0.1:6443")
        .to_string();
    let ca = format!("{certs_dir}/ca.crt");
    if env.path(&ca).exists() && env.path(&format!("{certs_dir}/ca.key")).exists() {
        println!("[certs] Using existing ca certificate authority");
    } else {
        println!("[certs] Generating \"ca\" certificate and key");
        write(
            env,
            &ca,
            "-----BEGIN CERTIFICATE-----\n(kubeadm-test-double CA)\n-----END CERTIFICATE-----\n",
            0o644,
        )?;
        write(
            env,
            &format!("{certs_dir}/ca.key"),
            "(kubeadm-test-double key)\n",
            0o600,
        )?;
    }
    write(
        env,
        &format!("{certs_dir}/apiserver.crt"),
        "(apiserver cert)\n",
        0o644,
    )?;
    for (file, user) in [
        ("admin.conf", "kubernetes-admin"),
        ("super-admin.conf", "kubernetes-super-admin"),
        ("kubelet.conf", node_user(env, &init).as_str()),
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
    ] {
        write(
            env,
            &format!("/etc/kubernetes/{file}"),
            &kubeconfig(&endpoint, user),
            0o600,
        )?;
        if file == "kubelet.conf" {
            crash_if_asked(env);
        }
    }
    write_control_plane_manifests(env)?;
    if cluster["etcd"].get("external").is_none() {
        write_etcd_manifest(env)?;
    }
    let name = node_name(env, &init);
    store_node(env, &name, true)?;
    for object in [
        "api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        "apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:node-autoapprove-certificate-rotation",
    ] {
        store(env, object, &json!({"metadata": {"name": object.rsplit('/').next()}}))?;
    }
    let token = init["bootstrapTokens"][0]["token"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let key = init["certificateKey"].as_str().unwrap_or("").to_string();
    println!("Your Kubernetes control-plane has initialized successfully!");
    if upload_certs {
        println!("[upload-certs] Using certificate key:\n{key}");
    }
    // Real kubeadm prints the join commands with the secrets in them.
    println!("You can now join any number of control-plane nodes by running:\n  kubeadm join {endpoint} --token {token} \\\n    --discovery-token-ca-cert-hash sha256:<hash> --control-plane --certificate-key {key}");
    println!("Then you can join any number of worker nodes by running:\n  kubeadm join {endpoint} --token {token} --discovery-token-ca-cert-hash sha256:<hash>");
    Ok(())
}

fn do_join(env: &Env, docs: &validate::Docs) -> Result<(), String> {
    let join = docs.join.clone().unwrap_or(Value::Null);
    let endpoint = match join["discovery"]["file"]["kubeConfigPath"].as_str() {
        // File discovery: like kubeadm, the server named in that kubeconfig.
        Some(file) => server_in_kubeconfig(env, file)?,
        None => join["discovery"]["bootstrapToken"]["apiServerEndpoint"]
            .as_str()
            .unwrap_or("127.0.0.1:6443")
            .to_string(),
    };
    println!("[preflight] Running pre-flight checks");
    println!("[discovery] Trying to connect to API Server \"{endpoint}\"");
    write(
        env,
        "/etc/kubernetes/pki/ca.crt",
        "-----BEGIN CERTIFICATE-----\n(cluster CA)\n-----END CERTIFICATE-----\n",
        0o644,
    )?;
    if join.get("controlPlane").is_some() {
        println!("[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        write(
            env,
            "/etc/kubernetes/pki/ca.key",
            "(downloaded CA key)\n",
            0o600,
        )?;
        write(
            env,
            "/etc/kubernetes/admin.conf",
            &kubeconfig(&endpoint, "kubernetes-admin"),
            0o600,
        )?;
        write_control_plane_manifests(env)?;
    }
    // kubelet-start: the kubelet's TLS bootstrap writes kubelet.conf, then its
    // rotated client certificate.
    write(
        env,
        "/etc/kubernetes/kubelet.conf",
        &kubeconfig(&endpoint, &node_user(env, &join)),
        0o600,
    )?;
    crash_if_asked(env);
    write(
        env,
        KUBELET_CLIENT_CERT,
        "(kubelet client certificate and key)\n",
        0o600,
    )?;
    // control-plane-join: the local etcd member, then mark-control-plane.
    let control_plane = join.get("controlPlane").is_some();
    if control_plane {
        write_etcd_manifest(env)?;
    }
    store_node(env, &node_name(env, &join), control_plane)?;
    println!("This node has joined the cluster.");
    Ok(())
}

/// Where the kubelet keeps its rotated client certificate (kubeadm points kubelet.conf at it).
const KUBELET_CLIENT_CERT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// kubeadm's node name: `nodeRegistration.name`, else the hostname (the node's
/// /etc/hostname, else this machine's), lowercased.
fn node_name(env: &Env, config: &Value) -> String {
    match config["nodeRegistration"]["name"].as_str() {
        Some(name) => name.to_string(),
        None => fs::read_to_string(env.path("/etc/hostname"))
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| nix::unistd::gethostname().ok()?.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
            .to_ascii_lowercase(),
    }
}

/// Store a cluster object at its API path, as kube-apiserver would keep it.
fn store(env: &Env, api_path: &str, object: &Value) -> Result<(), String> {
    let p = env.path(&format!("/var/lib/kubeadm-test-double/cluster/{api_path}"));
    fs::create_dir_all(p.parent().expect("parent")).map_err(|e| e.to_string())?;
    fs::write(&p, object.to_string()).map_err(|e| format!("store {api_path}: {e}"))
}

/// The Node the kubelet registers (Ready at once), labelled and tainted by
/// kubeadm's mark-control-plane phase on a control plane.
fn store_node(env: &Env, name: &str, control_plane: bool) -> Result<(), String> {
    let mut labels = json!({ "kubernetes.io/hostname": name });
    if control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels },
        "spec": { "podCIDR": "10.244.7.0/24" },
        "status": { "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status (test double)"
        }]}
    });
    store(env, &format!("api/v1/nodes/{name}"), &node)
}

/// `KUBEADM_TEST_DOUBLE_CRASH=after-kubelet-conf`: power is lost now, for the
/// agent that runs kubeadm too.
fn crash_if_asked(env: &Env) {
    if env.crash.as_deref() != Some("after-kubelet-conf") {
        return;
    }
    record(env, json!({"event": "crash-after-kubelet-conf"}));
    nix::unistd::sync();
    let _ = nix::sys::signal::kill(nix::unistd::getppid(), nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    std::thread::sleep(std::time::Duration::from_secs(60));
    std::process::exit(137);
}

fn server_in_kubeconfig(env: &Env, file: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(env.path(file))
        .map_err(|e| format!("couldn't read discovery file {file}: {e}"))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| format!("discovery file {file} names no https server"))
}

fn reset(env: &Env, argv: &[String]) -> Result<(), String> {
    record(env, json!({ "argv": argv }));
    if !argv.iter().any(|a| a == "-f" || a == "--force") {
        return Err("kubeadm-test-double: reset needs -f (no terminal to confirm on)".into());
    }
    for dir in [
        "/etc/kubernetes/manifests",
        "/etc/kubernetes/pki",
        "/var/lib/etcd",
        "/var/lib/kubelet",
    ] {
        let _ = fs::remove_dir_all(env.path(dir));
    }
    for f in [
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        let _ = fs::remove_file(env.path(&format!("/etc/kubernetes/{f}")));
    }
    println!("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]");
    Ok(())
}

fn validate_only(env: &Env, argv: &[String]) -> Result<(), String> {
    let parsed = parse_flags(&argv[2..]);
    let path = parsed.config.ok_or("config validate needs --config")?;
    let text = fs::read_to_string(Path::new(&path)).map_err(|e| e.to_string())?;
    let kind = if text.contains("kind: JoinConfiguration") {
        "join"
    } else {
        "init"
    };
    validate::config_for(kind, &text, env.minor()).map(|_| ())
}
