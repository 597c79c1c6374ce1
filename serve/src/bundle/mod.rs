//! `kubeboot bundle`: a cluster's material made before any node exists — CAs
//! and service-account keys, a bootstrap token, a certificate key, the CA
//! hash — and from it one node document and one cloud-config per role, so all
//! nodes can boot at once from user-data made in one command.
//!
//! Layout of a bundle directory (secrets 0600, directories 0700):
//! ```text
//! discovery.toml                      endpoint, token, CA hashes, certificate key, cluster settings
//! pki/{ca,front-proxy-ca}.{crt,key}   pki/etcd/ca.{crt,key} (stacked etcd)   pki/sa.{key,pub}
//! pki/external-etcd{-ca.crt,.crt,.key}  the external etcd's CA and client pair, if given
//! nodes/{init,control-plane,worker}.toml
//! cloud-init/{init,control-plane,worker}.yaml
//! ```

use kubeboot_core::pki;
pub mod secrets;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::userdata;
use kubeboot_core::document::writer::{WriteError, Writer};
use kubeboot_core::document::{formats, Role, PKI_PAIRS};
use kubeboot_core::tls::ca_hash_of_der;

/// Why a bundle could not be made, rotated or read, or a document or
/// kubeconfig made from it. No variant holds the bundle's secrets (token,
/// certificate key, private keys): only paths, flags and the reason.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A command-line value that cannot be used; `why` says what would be.
    #[error("{flag} {value:?}: {why}")]
    Argument {
        flag: &'static str,
        value: String,
        why: String,
    },
    /// The external etcd's client files without its URLs.
    #[error(
        "--external-etcd-ca/--external-etcd-cert/--external-etcd-key need --external-etcd URL,… (the etcd they belong to)"
    )]
    EtcdFilesWithoutUrl,
    /// An external etcd client file given by `flag` could not be read.
    #[error("{flag} {}: {source}", path.display())]
    EtcdFile {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An external etcd client file that is not the PEM it should be.
    #[error("{flag} {}: not a PEM {what} (no \"{want}\" line)", path.display())]
    NotPem {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
        want: &'static str,
    },
    /// `create` without `force` where a bundle is.
    #[error(
        "{} already exists: refusing to overwrite a bundle (use --force to replace it)",
        path.display()
    )]
    Exists { path: PathBuf },
    /// A directory could not be made.
    #[error("create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The temporary directory beside the bundle could not be made.
    #[error("create a temporary directory in {}: {source}", path.display())]
    TempDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Key or certificate material could not be made or read.
    #[error("{0}")]
    Pki(String),
    /// `discovery.toml` could not be read: probably not a bundle.
    #[error("{}: {source} (is {} a kubeboot bundle?)", path.display(), dir.display())]
    NotABundle {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
    /// `discovery.toml` is not what kubeboot writes (`message` is scrubbed of
    /// the file's text).
    #[error("{}: {message}", path.display())]
    Discovery { path: PathBuf, message: String },
    /// A document could not be written (a kubeboot bug).
    #[error("internal error: {0}")]
    Document(#[from] WriteError),
    /// A generated document failed the agent's validation (a kubeboot bug).
    #[error("internal error: the generated {role} document is invalid: {message}")]
    Invalid { role: Role, message: String },
    /// A file of the bundle could not be read (`path` relative to the bundle
    /// where the operator knows it so).
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing a file of the bundle failed at `step` (write, fsync, rename).
    #[error("{step} {rel}: {source}")]
    Write {
        step: &'static str,
        rel: String,
        source: std::io::Error,
    },
    /// Setting up `path` for a file (permissions, temporary file) failed.
    #[error("{source}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The old bundle at `path` could not be moved aside.
    #[error("move the old bundle aside: {source}")]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The new bundle could not be renamed to `path`.
    #[error("rename into {}: {source}", path.display())]
    RenameInto {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The old bundle, moved aside to `path`, could not be removed.
    #[error("remove the old bundle: {source}")]
    RemoveOld {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A document could not be rendered as TOML.
    #[error("{0}")]
    Toml(#[from] toml::ser::Error),
    /// A kubeconfig could not be rendered as YAML.
    #[error("{0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

fn argument(flag: &'static str, value: &str) -> impl FnOnce(String) -> BundleError {
    let value = value.to_string();
    move |why| BundleError::Argument { flag, value, why }
}

pub const ROLES: [Role; 3] = [Role::Init, Role::ControlPlane, Role::Worker];

/// What `bundle new` is asked to make.
#[derive(Debug, Clone)]
pub struct NewBundle {
    pub endpoint: String,
    pub name: Option<String>,
    pub kubernetes_version: Option<String>,
    pub pod_subnet: Option<String>,
    pub external_etcd: Vec<String>,
    /// The external etcd's CA and the API servers' client pair, carried inline
    /// by the init document (and uploaded by kubeadm for control-plane joins).
    pub external_etcd_client: Option<EtcdClientFiles>,
    /// Node documents tuned for emulated (TCG) or heavily shared hosts: see [`slow_host_tuning`].
    pub slow_host: bool,
}

/// Files given to `bundle new` for the external etcd.
#[derive(Debug, Clone)]
pub struct EtcdClientFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the external etcd's files go in a bundle: kubeadm's names for them in
/// `kubeadm-certs`, so `serve --fresh-credentials` uploads them as kubeadm does.
const EXTERNAL_ETCD_FILES: [(&str, &str, u32); 3] = [
    ("--external-etcd-ca", "pki/external-etcd-ca.crt", 0o644),
    ("--external-etcd-cert", "pki/external-etcd.crt", 0o644),
    ("--external-etcd-key", "pki/external-etcd.key", 0o600),
];

/// `discovery.toml`: the values every node document is made from.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    pub endpoint: String,
    pub token: String,
    pub ca_cert_hashes: Vec<String>,
    pub certificate_key: String,
    #[serde(default)]
    pub cluster: ClusterSettings,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("ca_cert_hashes", &self.ca_cert_hashes)
            .field("certificate_key", &"<redacted>")
            .field("cluster", &self.cluster)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_etcd: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slow_host: bool,
}

/// What was made, for the summary.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub dir: PathBuf,
    pub endpoint: String,
    pub ca_cert_hash: String,
    pub token_id: String,
    pub files: Vec<String>,
}

fn check_request(req: &NewBundle) -> Result<(), BundleError> {
    formats::parse_endpoint(&req.endpoint)
        .map_err(|why| argument("--endpoint", &req.endpoint)(why.to_string()))?;
    if let Some(v) = &req.kubernetes_version {
        formats::parse_kubernetes_version(v)
            .map_err(|why| argument("--kubernetes-version", v)(why.to_string()))?;
    }
    if let Some(s) = &req.pod_subnet {
        formats::check_cidrs(s).map_err(|why| argument("--pod-subnet", s)(why.to_string()))?;
    }
    if let Some(n) = &req.name {
        if !formats::is_dns_name(n) {
            return Err(argument("--name", n)(
                "use lowercase letters, digits, '-' and '.'".into(),
            ));
        }
    }
    for u in &req.external_etcd {
        if !u.starts_with("https://") {
            return Err(argument("--external-etcd", u)(
                "etcd client URLs must be https://HOST:2379".into(),
            ));
        }
    }
    if req.external_etcd_client.is_some() && req.external_etcd.is_empty() {
        return Err(BundleError::EtcdFilesWithoutUrl);
    }
    Ok(())
}

/// The external etcd's files, read and checked before anything is written.
fn read_external_etcd(files: &EtcdClientFiles) -> Result<Vec<(String, u32, String)>, BundleError> {
    let paths = [&files.ca, &files.cert, &files.key];
    let mut out = Vec::new();
    for ((flag, rel, mode), path) in EXTERNAL_ETCD_FILES.iter().zip(paths) {
        let text = fs::read_to_string(path).map_err(|source| BundleError::EtcdFile {
            flag,
            path: path.clone(),
            source,
        })?;
        let want = if *mode == 0o600 {
            "PRIVATE KEY-----"
        } else {
            "BEGIN CERTIFICATE-----"
        };
        if !text.contains(want) {
            return Err(BundleError::NotPem {
                flag,
                path: path.clone(),
                what: if *mode == 0o600 {
                    "private key"
                } else {
                    "certificate"
                },
                want,
            });
        }
        out.push((rel.to_string(), *mode, text));
    }
    Ok(out)
}

/// Make a new bundle in `out`. Everything is written to a temporary directory
/// beside it and renamed into place at the end: an interrupted run leaves no half bundle.
pub fn create(req: &NewBundle, out: &Path, force: bool) -> Result<Summary, BundleError> {
    check_request(req)?;
    let external_etcd = match &req.external_etcd_client {
        Some(files) => read_external_etcd(files)?,
        None => Vec::new(),
    };
    if out.exists() && !force {
        return Err(BundleError::Exists {
            path: out.to_path_buf(),
        });
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|source| BundleError::CreateDir {
        path: parent.to_path_buf(),
        source,
    })?;
    let tmp = tempfile::Builder::new()
        .prefix(".kubeboot-bundle-")
        .tempdir_in(parent)
        .map_err(|source| BundleError::TempDir {
            path: parent.to_path_buf(),
            source,
        })?;
    let ca = pki::new_ca("kubernetes").map_err(BundleError::Pki)?;
    let front_proxy = pki::new_ca("front-proxy-ca").map_err(BundleError::Pki)?;
    let sa = pki::new_service_account_keys().map_err(BundleError::Pki)?;
    let w = BundleFiles(tmp.path().to_path_buf());
    w.file("pki/ca.crt", &ca.cert_pem, 0o644)?;
    w.file("pki/ca.key", &ca.key_pem, 0o600)?;
    w.file("pki/front-proxy-ca.crt", &front_proxy.cert_pem, 0o644)?;
    w.file("pki/front-proxy-ca.key", &front_proxy.key_pem, 0o600)?;
    w.file("pki/sa.key", &sa.private_pem, 0o600)?;
    w.file("pki/sa.pub", &sa.public_pem, 0o644)?;
    if req.external_etcd.is_empty() {
        let etcd = pki::new_ca("etcd-ca").map_err(BundleError::Pki)?;
        w.file("pki/etcd/ca.crt", &etcd.cert_pem, 0o644)?;
        w.file("pki/etcd/ca.key", &etcd.key_pem, 0o600)?;
    }
    for (rel, mode, text) in &external_etcd {
        w.file(rel, text, *mode)?;
    }
    let discovery = Discovery {
        endpoint: req.endpoint.clone(),
        token: secrets::new_bootstrap_token(),
        ca_cert_hashes: vec![ca_hash_of_der(&ca.cert_der).map_err(BundleError::Pki)?],
        certificate_key: secrets::new_certificate_key(),
        cluster: ClusterSettings {
            name: req.name.clone(),
            kubernetes_version: req.kubernetes_version.clone(),
            pod_subnet: req.pod_subnet.clone(),
            external_etcd: req.external_etcd.clone(),
            slow_host: req.slow_host,
        },
    };
    let files = write_documents(&w, &discovery)?;
    let tmp_path = tmp.keep();
    replace_dir(&tmp_path, out).inspect_err(|_| {
        let _ = fs::remove_dir_all(&tmp_path);
    })?;
    Ok(summary(out, &discovery, files))
}

fn summary(dir: &Path, d: &Discovery, mut files: Vec<String>) -> Summary {
    files.sort();
    Summary {
        dir: dir.to_path_buf(),
        endpoint: d.endpoint.clone(),
        ca_cert_hash: d.ca_cert_hashes[0].clone(),
        token_id: d.token.split('.').next().unwrap_or_default().to_string(),
        files,
    }
}

/// What to rotate in an existing bundle.
#[derive(Debug, Clone, Copy)]
pub enum Rotate {
    Token,
    CertificateKey,
}

/// Fresh token or certificate key for an existing bundle; documents rewritten.
pub fn rotate(dir: &Path, what: Rotate) -> Result<Summary, BundleError> {
    let mut d = read_discovery(dir)?;
    match what {
        Rotate::Token => d.token = secrets::new_bootstrap_token(),
        Rotate::CertificateKey => d.certificate_key = secrets::new_certificate_key(),
    }
    let files = write_documents(&BundleFiles(dir.to_path_buf()), &d)?;
    Ok(summary(dir, &d, files))
}

pub fn read_discovery(dir: &Path) -> Result<Discovery, BundleError> {
    let p = dir.join("discovery.toml");
    let text = fs::read_to_string(&p).map_err(|source| BundleError::NotABundle {
        path: p.clone(),
        dir: dir.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| BundleError::Discovery {
        message: kubeboot_core::document::scrub(e.message()),
        path: p,
    })
}

/// discovery.toml, then each role's node document and cloud-config; each
/// document is validated as the agent would before it is written.
fn write_documents(w: &BundleFiles, d: &Discovery) -> Result<Vec<String>, BundleError> {
    let mut files = Vec::new();
    let discovery_toml = format!(
        "# kubeboot bundle: what nodes need to join this cluster. SECRET: holds the bootstrap token\n\
         # and the certificate key. Rotate with `kubeboot bundle token` / `kubeboot bundle certificate-key`.\n{}",
        toml::to_string(d)?
    );
    w.file("discovery.toml", &discovery_toml, 0o600)?;
    files.push("discovery.toml".into());
    for role in ROLES {
        let doc = node_document(role, d, &w.0)?;
        kubeboot_core::kubeadm::validate_fully(&doc).map_err(|e| BundleError::Invalid {
            role,
            message: e.to_string(),
        })?;
        let name = format!("nodes/{role}.toml");
        w.file(&name, &doc, 0o600)?;
        files.push(name);
        let name = format!("cloud-init/{role}.yaml");
        w.file(&name, &userdata::cloud_config(&doc), 0o600)?;
        files.push(name);
    }
    Ok(files)
}

/// The node document for one role, as TOML.
pub fn node_document(role: Role, d: &Discovery, bundle_dir: &Path) -> Result<String, BundleError> {
    Ok(node_writer(role, d, bundle_dir)?.render())
}

/// The node document for one role, to be fitted further (`kubeboot up`).
pub fn node_writer(role: Role, d: &Discovery, bundle_dir: &Path) -> Result<Writer, BundleError> {
    let mut w = Writer::new(
        role,
        format!(
            "kubeboot node document: role {role}. SECRET (bootstrap token{}). Made by `kubeboot bundle`.",
            match role {
                Role::Init => ", certificate key, CA keys",
                Role::ControlPlane => ", certificate key",
                Role::Worker => "",
            }
        ),
    );
    w.set(&["cluster", "endpoint"], d.endpoint.as_str())?;
    if let Some(v) = &d.cluster.kubernetes_version {
        w.set(&["cluster", "kubernetes_version"], v.as_str())?;
    }
    if role == Role::Init {
        init_cluster(&mut w, d, bundle_dir)?;
    }
    w.set(&["discovery", "token"], d.token.as_str())?;
    if role != Role::Init {
        w.set(&["discovery", "ca_cert_hashes"], d.ca_cert_hashes.clone())?;
    }
    if role != Role::Worker {
        w.set(
            &["discovery", "certificate_key"],
            d.certificate_key.as_str(),
        )?;
    }
    if role == Role::Init {
        init_pki(&mut w, bundle_dir)?;
    }
    if d.cluster.slow_host {
        slow_host_tuning(&mut w, role, !d.cluster.external_etcd.is_empty())?;
    }
    Ok(w)
}

/// `[cluster]` as only the init node has it: name, pod subnet, external etcd.
fn init_cluster(w: &mut Writer, d: &Discovery, bundle_dir: &Path) -> Result<(), BundleError> {
    if let Some(n) = &d.cluster.name {
        w.set(&["cluster", "name"], n.as_str())?;
    }
    if let Some(p) = &d.cluster.pod_subnet {
        w.set(&["cluster", "pod_subnet"], p.as_str())?;
    }
    if d.cluster.external_etcd.is_empty() {
        return Ok(());
    }
    let etcd = ["cluster", "etcd"];
    w.set(
        &["cluster", "etcd", "external_endpoints"],
        d.cluster.external_etcd.clone(),
    )?;
    let inline = bundle_dir.join(EXTERNAL_ETCD_FILES[0].1);
    if inline.exists() {
        // Inline: the agent writes them under /etc/kubernetes/pki/external-etcd/.
        for ((_, rel, _), key) in EXTERNAL_ETCD_FILES.iter().zip(["ca_cert", "cert", "key"]) {
            let text =
                fs::read_to_string(bundle_dir.join(rel)).map_err(|source| BundleError::Read {
                    path: rel.into(),
                    source,
                })?;
            w.table_mut(&etcd)?.insert(key.into(), text.into());
        }
    } else {
        // The operator puts them on the init node at kubeadm's usual paths.
        let t = w.table_mut(&etcd)?;
        t.insert("ca_file".into(), "/etc/kubernetes/pki/etcd/ca.crt".into());
        t.insert(
            "cert_file".into(),
            "/etc/kubernetes/pki/apiserver-etcd-client.crt".into(),
        );
        t.insert(
            "key_file".into(),
            "/etc/kubernetes/pki/apiserver-etcd-client.key".into(),
        );
    }
    Ok(())
}

/// `[pki]`: the cluster's CAs for the init node. Every pair must be there,
/// except the etcd CA (made for stacked etcd only).
fn init_pki(w: &mut Writer, bundle_dir: &Path) -> Result<(), BundleError> {
    let read = |f: &str| {
        fs::read_to_string(bundle_dir.join("pki").join(f)).map_err(|source| BundleError::Read {
            path: Path::new("pki").join(f),
            source,
        })
    };
    for spec in &PKI_PAIRS {
        let optional = spec.cert_file.starts_with("etcd/");
        if optional && !bundle_dir.join("pki").join(spec.cert_file).exists() {
            continue;
        }
        w.set(&["pki", spec.cert_key], read(spec.cert_file)?)?;
        w.set(&["pki", spec.key_key], read(spec.key_file)?)?;
    }
    Ok(())
}

/// The longest `control_plane_timeout_seconds` the bundle renders (`--slow-host`):
/// serve's default init lease outlasts it (`election::DEFAULT_LEASE`).
pub const SLOW_HOST_CONTROL_PLANE_TIMEOUT: u64 = 1500;

/// What `bundle new --slow-host` adds to each role's document, for emulated (qemu
/// TCG) VMs sharing a few host cores, where the control plane runs many times
/// slower and every VM that boots takes CPU from the API server:
/// - kubeadm's wait for the control plane and the static Pods' startupProbe: 1500 s;
/// - a running component is restarted only after 900 s of failed liveness probes
///   (a restart under TCG costs minutes and adds to the load that caused it);
/// - etcd heartbeats every 500 ms and elects after 5 s of silence (etcd's defaults,
///   100 ms and 1 s, assume a host that answers in milliseconds), and the controller
///   manager and scheduler keep their leader leases through 100 s of slow API calls
///   (kubeadm's defaults give up after 10 s and exit; a restart under TCG costs
///   minutes, and while the controller manager is down joining kubelets'
///   certificates are not approved — seen with 40 s in a real run). These are ClusterConfiguration, which `init`
///   uploads and joining control planes read, so only `init` carries them;
/// - every role's kubeadm waits as long for what it waits on (with kubeadm ≥ 1.31:
///   a join's TLS bootstrap and kubelet, a control plane's etcd calls).
pub fn slow_host_tuning(w: &mut Writer, role: Role, external_etcd: bool) -> Result<(), WriteError> {
    w.set(
        &["kubeadm", "control_plane_timeout_seconds"],
        SLOW_HOST_CONTROL_PLANE_TIMEOUT as i64,
    )?;
    if role == Role::Worker {
        return Ok(());
    }
    w.set(&["kubeadm", "static_pod_startup_seconds"], 1500)?;
    w.set(&["kubeadm", "static_pod_liveness_seconds"], 900)?;
    if role != Role::Init {
        return Ok(());
    }
    let patch = |component: &'static str| {
        [
            "kubeadm",
            "patch",
            "cluster_configuration",
            component,
            "extraArgs",
        ]
    };
    // An external etcd is tuned where it runs.
    if !external_etcd {
        let etcd = w.table_mut(&[
            "kubeadm",
            "patch",
            "cluster_configuration",
            "etcd",
            "local",
            "extraArgs",
        ])?;
        etcd.insert("heartbeat-interval".into(), "500".into());
        etcd.insert("election-timeout".into(), "5000".into());
    }
    for component in ["controllerManager", "scheduler"] {
        let args = w.table_mut(&patch(component))?;
        args.insert("leader-elect-lease-duration".into(), "120s".into());
        args.insert("leader-elect-renew-deadline".into(), "100s".into());
        args.insert("leader-elect-retry-period".into(), "10s".into());
    }
    Ok(())
}

struct BundleFiles(PathBuf);

impl BundleFiles {
    fn file(&self, rel: &str, content: &str, mode: u32) -> Result<(), BundleError> {
        let p = self.0.join(rel);
        let dir = p.parent().expect("has parent");
        let prepare = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Prepare { path, source }
        };
        let write = |step: &'static str| {
            move |source| BundleError::Write {
                step,
                rel: rel.to_string(),
                source,
            }
        };
        fs::create_dir_all(dir).map_err(|source| BundleError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(prepare(dir))?;
        fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700))
            .map_err(prepare(&self.0))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(prepare(dir))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(prepare(tmp.path()))?;
        std::io::Write::write_all(&mut tmp, content.as_bytes()).map_err(write("write"))?;
        tmp.as_file().sync_all().map_err(write("fsync"))?;
        tmp.persist(&p).map_err(|e| write("rename")(e.error))?;
        Ok(())
    }
}

/// Put `new` at `out`, replacing an existing directory only after `new` is complete.
fn replace_dir(new: &Path, out: &Path) -> Result<(), BundleError> {
    let rename_into = |source| BundleError::RenameInto {
        path: out.to_path_buf(),
        source,
    };
    if out.exists() {
        let old = out.with_extension("kubeboot-old");
        let _ = fs::remove_dir_all(&old);
        fs::rename(out, &old).map_err(|source| BundleError::MoveAside {
            path: old.clone(),
            source,
        })?;
        fs::rename(new, out).map_err(rename_into)?;
        fs::remove_dir_all(&old).map_err(|source| BundleError::RemoveOld { path: old, source })
    } else {
        fs::rename(new, out).map_err(rename_into)
    }
}

/// A kubeconfig for `user` in `groups` (default: cluster-admin through
/// `system:masters`, as kubeadm's admin.conf in v1.28), signed by the bundle's
/// own cluster CA, pointing at the bundle's endpoint (or `server`). The operator
/// gets cluster credentials without copying anything off a node. Holds a
/// private key: write it 0600.
pub fn kubeconfig(
    dir: &Path,
    user: &str,
    groups: &[String],
    valid_hours: u64,
    server: Option<&str>,
) -> Result<String, BundleError> {
    use base64::Engine;
    let d = read_discovery(dir)?;
    let read = |p: &str| {
        std::fs::read_to_string(dir.join(p)).map_err(|source| BundleError::Read {
            path: dir.join(p),
            source,
        })
    };
    let (ca_cert, ca_key) = (read("pki/ca.crt")?, read("pki/ca.key")?);
    let (cert, key) = pki::issue_client_cert(
        &ca_cert,
        &ca_key,
        user,
        groups,
        std::time::Duration::from_secs(valid_hours * 3600),
    )
    .map_err(BundleError::Pki)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let server = server.map_or_else(|| format!("https://{}", d.endpoint), str::to_string);
    let cluster = d
        .cluster
        .name
        .clone()
        .unwrap_or_else(|| "kubernetes".into());
    let v = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": cluster, "cluster": {
            "server": server, "certificate-authority-data": b64(&ca_cert) } }],
        "users": [{ "name": user, "user": {
            "client-certificate-data": b64(&cert), "client-key-data": b64(&key) } }],
        "contexts": [{ "name": format!("{user}@{cluster}"),
                       "context": { "cluster": cluster, "user": user } }],
        "current-context": format!("{user}@{cluster}"),
    });
    Ok(serde_yaml_ng::to_string(&v)?)
}
