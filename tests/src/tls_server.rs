//! A real HTTPS server on 127.0.0.1 for tests: rustls with certificates made
//! by rcgen (a CA and a server certificate for 127.0.0.1 it signs), serving
//! one body at one path, optionally behind a bearer token.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[allow(dead_code)]
pub struct Pki {
    pub ca_der: Vec<u8>,
    pub ca_pem: String,
    pub ca_key_pem: String,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Vec<u8>,
}

#[allow(dead_code)]
pub fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "kubeboot-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_der: ca_cert.der().to_vec(),
        ca_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server_chain: vec![server_cert.der().clone(), ca_cert.der().clone()],
        server_key: server_key.serialize_der(),
    }
}

/// Serve `body` at `path` for up to `max_requests` connections, in a thread.
#[allow(dead_code)]
pub fn serve(
    pki: &Pki,
    path: &str,
    body: &str,
    token: Option<&str>,
    max_requests: usize,
) -> SocketAddr {
    serve_at(pki, "127.0.0.1:0", path, body, token, max_requests)
}

/// As [`serve`], on a given address.
pub fn serve_at(
    pki: &Pki,
    bind: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    max_requests: usize,
) -> SocketAddr {
    serve_gated(pki, bind, path, body, token, max_requests, None)
}

/// As [`serve_at`], but until `gate` exists every connection is closed at once,
/// before TLS: an endpoint where nothing answers yet (a load balancer with no
/// healthy backend), as before `kubeadm init` has started an API server.
pub fn serve_gated(
    pki: &Pki,
    bind: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    max_requests: usize,
    gate: Option<std::path::PathBuf>,
) -> SocketAddr {
    serve_cluster(pki, bind, path, body, token, max_requests, gate, None)
}

/// As [`serve_gated`], standing in for a cluster whose objects the kubeadm test
/// double wrote under `cluster` (`api/v1/nodes/NAME`,
/// `api/v1/namespaces/kube-system/configmaps/kubeadm-config`, …): a GET of an
/// API path answers that file, or 404 when there is none. Without `cluster`
/// every Node is Ready and kubeadm's objects all exist.
#[allow(clippy::too_many_arguments)]
pub fn serve_cluster(
    pki: &Pki,
    bind: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
    max_requests: usize,
    gate: Option<std::path::PathBuf>,
    cluster: Option<std::path::PathBuf>,
) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        pki.server_chain.clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
    )
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let (path, body, token) = (
        path.to_string(),
        body.to_string(),
        token.map(str::to_string),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(tcp) = stream else { continue };
            if gate.as_ref().is_some_and(|g| !g.exists()) {
                drop(tcp);
                continue;
            }
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue; // e.g. the client refused our certificate
            }
            let mut authorized = token.is_none();
            let mut bearer: Option<String> = None;
            let mut content_length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((name, value)) = h.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("content-length") {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                    if name.trim().eq_ignore_ascii_case("authorization") {
                        bearer = value.trim().strip_prefix("Bearer ").map(str::to_string);
                    }
                }
                if let Some(t) = &token {
                    if h.trim()
                        .eq_ignore_ascii_case(&format!("authorization: Bearer {t}"))
                    {
                        authorized = true;
                    }
                }
            }
            let mut request_body = vec![0u8; content_length.min(1 << 20)];
            if std::io::Read::read_exact(&mut reader, &mut request_body).is_err() {
                continue;
            }
            let method = request_line.split_whitespace().next().unwrap_or("");
            let requested = request_line.split_whitespace().nth(1).unwrap_or("");
            let wanted = requested == path.as_str();
            // A node's own credentials (`system:node:NAME`) get what the Node
            // authorizer of Kubernetes ≥ 1.32 (AuthorizeNodeWithSelectors) allows:
            // its own Node only, and a list of Nodes only when field-selected to it.
            let node_identity = bearer
                .as_deref()
                .and_then(|b| b.strip_prefix(NODE_TOKEN_PREFIX))
                .map(str::to_string);
            let scope = node_identity
                .as_deref()
                .and_then(|me| node_scope(me, method, requested));
            if let Some((me, NodeScope::Refused(what))) =
                node_identity.as_deref().zip(scope.as_ref())
            {
                record_refusal(addr, me, method, requested);
                let body = forbidden_json(&format!(
                    "{what} is forbidden: User \"system:node:{me}\" cannot {} it: \
                     can only read its own Node (test double's node authorizer)",
                    method.to_ascii_lowercase()
                ));
                let _ = write!(
                    tls,
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
                continue;
            }
            let own_list = match (&scope, node_identity.as_deref()) {
                (Some(NodeScope::OwnList), Some(me)) => Some(node_list_json(me)),
                _ => None,
            };
            // Standing in for kube-apiserver's Node endpoint too: every Node is Ready
            // (GET, and PATCH of its annotations answers the same Node), or, with
            // `cluster`, the Nodes and objects stored there.
            let api_path = requested.split('?').next().unwrap_or("");
            let stored = cluster
                .as_ref()
                .and_then(|dir| stored_object(dir, api_path));
            let object = match &cluster {
                Some(_) => stored,
                None => api_path
                    .strip_prefix(NODES_PATH)
                    .filter(|n| !n.is_empty() && !n.contains('/'))
                    .map(ready_node_json)
                    .or_else(|| KUBEADM_OBJECTS.contains(&api_path).then(|| "{}".into())),
            };
            let missing = cluster.is_some()
                && object.is_none()
                && method != "POST"
                && (api_path.starts_with("/api/v1/nodes/")
                    || api_path.starts_with("/apis/")
                    || KUBEADM_OBJECTS.contains(&api_path));
            // And its Events: a created Event is answered with itself.
            let event = (method == "POST" && requested.split('?').next() == Some(EVENTS_PATH))
                .then(|| String::from_utf8_lossy(&request_body).into_owned());
            // A node named refuse-events-… is refused, as the Node authorizer
            // would refuse a credential without the right (tests the drop path).
            let refused = event
                .as_deref()
                .is_some_and(|e| e.contains("\"name\":\"refuse-events"));
            // `/redirect?to=URL` answers 302 to URL (the redirect tests).
            if let Some(to) = requested.strip_prefix("/redirect?to=") {
                let _ = write!(
                    tls,
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
                continue;
            }
            // With `cluster`, objects are created (POST to their collection,
            // given a uid) and deleted there too, as kube-apiserver would.
            let changed = cluster
                .as_ref()
                .filter(|_| event.is_none())
                .and_then(|dir| change_object(dir, method, api_path, &request_body));
            let (status, content) = match (wanted, authorized, &object) {
                _ if changed.is_some() => {
                    let (status, body) = changed.as_ref().expect("checked");
                    (*status, body.as_str())
                }
                _ if own_list.is_some() => ("200 OK", own_list.as_deref().unwrap_or("")),
                _ if refused => ("403 Forbidden", FORBIDDEN_STATUS),
                _ if event.is_some() => ("201 Created", event.as_deref().unwrap_or("")),
                _ if missing => ("404 Not Found", NOT_FOUND_STATUS),
                (_, _, Some(object)) => ("200 OK", object.as_str()),
                (_, false, None) => ("401 Unauthorized", "unauthorized\n"),
                (false, true, None) => ("404 Not Found", "no such document\n"),
                (true, true, None) => ("200 OK", body.as_str()),
            };
            let _ = write!(
                tls,
                "HTTP/1.1 {status}\r\nContent-Type: application/toml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{content}",
                content.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    addr
}

pub const NODES_PATH: &str = "/api/v1/nodes/";
const NOT_FOUND_STATUS: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found (test double)","reason":"NotFound","code":404}"#;

/// What kubeadm's last phases leave in the cluster and the agent's resume looks for.
const KUBEADM_OBJECTS: [&str; 2] = [
    "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:node-autoapprove-certificate-rotation",
];

/// A POST (create) or DELETE of an object under `dir`; `None` for other methods.
fn change_object(
    dir: &std::path::Path,
    method: &str,
    api_path: &str,
    body: &[u8],
) -> Option<(&'static str, String)> {
    let rel = api_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return None;
    }
    match method {
        "POST" => {
            let mut object: serde_json::Value = serde_json::from_slice(body).ok()?;
            let name = object["metadata"]["name"].as_str()?.to_string();
            let path = dir.join(rel).join(&name);
            if path.exists() {
                return Some(("409 Conflict", conflict_json(&name)));
            }
            object["metadata"]["uid"] = format!("uid-{name}").into();
            std::fs::create_dir_all(path.parent()?).ok()?;
            std::fs::write(&path, object.to_string()).ok()?;
            Some(("201 Created", object.to_string()))
        }
        "DELETE" => {
            let path = dir.join(rel);
            if std::fs::remove_file(&path).is_ok() {
                Some((
                    "200 OK",
                    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}"#
                        .into(),
                ))
            } else {
                Some(("404 Not Found", NOT_FOUND_STATUS.into()))
            }
        }
        _ => None,
    }
}

fn conflict_json(name: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("\"{name}\" already exists"), "reason": "AlreadyExists", "code": 409
    })
    .to_string()
}

/// The object stored for `api_path`, if any; for a collection, the list of
/// the objects stored in it.
fn stored_object(dir: &std::path::Path, api_path: &str) -> Option<String> {
    let rel = api_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return None;
    }
    let path = dir.join(rel);
    if !path.is_dir() {
        return std::fs::read_to_string(path).ok();
    }
    let mut names: Vec<_> = std::fs::read_dir(&path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let items: Vec<serde_json::Value> = names
        .iter()
        .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
        .collect();
    Some(
        serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
            .to_string(),
    )
}

/// The bearer token of a node's own credentials in the kubeadm double's
/// kubelet.conf: this prefix, then the node's name (`system:node:NAME`).
pub const NODE_TOKEN_PREFIX: &str = "kubeadm-test-double.node.";

enum NodeScope {
    /// A list of Nodes selected to this node's own: answered with it alone.
    OwnList,
    /// Not for this node: what it asked for, as the API server names it.
    Refused(String),
}

/// What the Node authorizer with selectors decides for node `me`; `None`: not a
/// Node request, or one for its own Node (served as for anyone).
fn node_scope(me: &str, method: &str, requested: &str) -> Option<NodeScope> {
    let (path, query) = requested.split_once('?').unwrap_or((requested, ""));
    if path == NODES_PATH.trim_end_matches('/') || path == NODES_PATH {
        let own = [
            format!("fieldSelector=metadata.name%3D{me}"),
            format!("fieldSelector=metadata.name={me}"),
        ];
        let selected = query.split('&').any(|q| own.iter().any(|o| o == q));
        return Some(if method == "GET" && selected {
            NodeScope::OwnList
        } else {
            NodeScope::Refused("nodes".into())
        });
    }
    let name = path.strip_prefix(NODES_PATH)?;
    let name = name.split('/').next().unwrap_or(name);
    (name != me).then(|| NodeScope::Refused(format!("nodes \"{name}\"")))
}

/// What node credentials asked for and were refused, per test server.
static NODE_REFUSALS: std::sync::Mutex<Vec<(SocketAddr, String)>> =
    std::sync::Mutex::new(Vec::new());

fn record_refusal(server: SocketAddr, me: &str, method: &str, requested: &str) {
    if let Ok(mut r) = NODE_REFUSALS.lock() {
        r.push((server, format!("system:node:{me} {method} {requested}")));
    }
}

/// Every request the test server at `server` refused to node credentials
/// because it was about another Node (or all of them).
#[allow(dead_code)]
pub fn node_scope_refusals(server: SocketAddr) -> Vec<String> {
    NODE_REFUSALS
        .lock()
        .map(|r| {
            r.iter()
                .filter(|(s, _)| *s == server)
                .map(|(_, what)| what.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn forbidden_json(message: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden", "code": 403
    })
    .to_string()
}

/// A NodeList holding only this node's Node.
fn node_list_json(me: &str) -> String {
    let node: serde_json::Value =
        serde_json::from_str(&ready_node_json(me)).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [node]
    })
    .to_string()
}
const FORBIDDEN_STATUS: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"events is forbidden: test double refuses this node","reason":"Forbidden","code":403}"#;
pub const EVENTS_PATH: &str = "/api/v1/namespaces/default/events";

/// A Node that the kubelet reports Ready, with a podCIDR (as the real API server shows it).
pub fn ready_node_json(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name },
        "spec": { "podCIDR": "10.244.7.0/24" },
        "status": { "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status (test double)"
        }]}
    })
    .to_string()
}

pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// The `kube-public/cluster-info` ConfigMap as the API server returns it:
/// a kubeconfig with the cluster CA, signed (detached JWS) for one token.
pub fn cluster_info_json(server: &str, ca_pem: &str, token: Option<&str>) -> String {
    use base64::Engine;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_data}\n    server: https://{server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    );
    let mut data = serde_json::Map::new();
    data.insert("kubeconfig".into(), kubeconfig.clone().into());
    if let Some(token) = token {
        let (id, secret) = token.split_once('.').unwrap();
        data.insert(
            format!("jws-kubeconfig-{id}"),
            kubeboot_kube::discovery::jws::detached_signature(&kubeconfig, id, secret).into(),
        );
    }
    serde_json::json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": data,
    })
    .to_string()
}

/// A server certificate for 127.0.0.1 signed by an existing CA (e.g. a bundle's).
#[allow(dead_code)]
pub fn pki_from_ca(ca_cert_pem: &str, ca_key_pem: &str) -> Pki {
    pki_from_ca_for(ca_cert_pem, ca_key_pem, &["127.0.0.1"])
}

/// A server certificate for `names` signed by an existing CA.
pub fn pki_from_ca_for(ca_cert_pem: &str, ca_key_pem: &str, names: &[&str]) -> Pki {
    let ca_key = KeyPair::from_pem(ca_key_pem).unwrap();
    let ca_params = CertificateParams::from_ca_cert_pem(ca_cert_pem).unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let ca_der = pem_body_der(ca_cert_pem);
    Pki {
        ca_der: ca_der.clone(),
        ca_pem: ca_cert_pem.to_string(),
        ca_key_pem: ca_key_pem.to_string(),
        server_chain: vec![server_cert.der().clone(), CertificateDer::from(ca_der)],
        server_key: server_key.serialize_der(),
    }
}

fn pem_body_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
