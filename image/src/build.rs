//! Building the node image with mkosi: stage the binaries, run mkosi with the
//! profile, a fixed SOURCE_DATE_EPOCH and a shared package cache, show its
//! progress, and describe the outputs (sizes, SHA-256) in `manifest.json`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::kubernetes::KubernetesError;
use crate::openpgp::OpenPgpError;
use crate::pxe::PxeError;
use crate::reproducible::ReproducibleError;

/// What kept an image from being built, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "the production profile needs Kubernetes: --kubernetes PATH (air-gapped: the \
         official release artifacts, e.g. kubernetes-server-linux-amd64.tar.gz; \
         docs/real-kubernetes.md), --packages DIR (.deb files) or --from-repository (pkgs.k8s.io)"
    )]
    NoKubernetes,
    #[error("give only one of --kubernetes, --packages and --from-repository")]
    ManySources,
    #[error("--images goes with --kubernetes (the production profile's air-gapped images)")]
    ImagesWithoutKubernetes,
    #[error(
        "the test profile needs the kubeadm test double: build it with `cargo build --release -p kubeboot-tests` \
         or pass --kubeadm-double PATH"
    )]
    NoKubeadmDouble,
    #[error(
        "{}: no mkosi.conf (run from the repository root, or pass --mkosi-dir)",
        .0.display()
    )]
    NoMkosiConf(PathBuf),
    #[error(
        "{} was built with the test-only crash points (cargo feature test-crash-points, \
         enabled when kubeboot-tests is built in the same cargo command); build the \
         agent on its own: cargo build --release --locked -p kubeboot --bin kubeboot",
        .0.display()
    )]
    TestHooks(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stage {}: {source}", from.display())]
    Stage {
        from: PathBuf,
        source: std::io::Error,
    },
    #[error("mkosi: {0} (install it with scripts/setup-image.sh)")]
    Mkosi(#[source] std::io::Error),
    #[error("mkosi failed ({status}); last lines:\n{tail}\n(full log: {})", log.display())]
    MkosiFailed {
        status: std::process::ExitStatus,
        tail: String,
        log: PathBuf,
    },
    #[error(transparent)]
    Kubernetes(#[from] KubernetesError),
    #[error(transparent)]
    Reproducible(#[from] ReproducibleError),
    #[error(transparent)]
    Pxe(#[from] PxeError),
    #[error("the HTTPS client for pkgs.k8s.io: {0}")]
    HttpClient(String),
    #[error(
        "the production profile needs the Kubernetes packages: {url} is unreachable ({why}). \
         For an air-gapped build pass --packages DIR (a directory of kubeadm, kubelet, kubectl, \
         cri-tools and kubernetes-cni .deb files), or build --profile test"
    )]
    Unreachable { url: &'static str, why: String },
    #[error("{url}: {source}")]
    Download {
        url: &'static str,
        source: std::io::Error,
    },
    #[error("{from}: not a usable signing key: {source}")]
    UnusableKey { from: String, source: OpenPgpError },
    #[error(
        "{from}: the signing key's fingerprint is {found}, not {expected} as kept in kubeboot; \
         refusing it (if the repository really changed its key, update \
         KUBERNETES_KEY_FINGERPRINT after checking the new one out of band)"
    )]
    WrongKey {
        from: String,
        found: String,
        expected: String,
    },
}

impl BuildError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
        move |source| BuildError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Real Kubernetes: from --kubernetes (air-gapped, images preloaded), --packages or pkgs.k8s.io.
    Production,
    /// The kubeadm test double in place of kubeadm: the boot path without Kubernetes.
    Test,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Production => "production",
            Profile::Test => "test",
        }
    }
}

pub struct BuildOptions {
    pub profile: Profile,
    pub mkosi_dir: PathBuf,
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub kubeboot_bin: PathBuf,
    /// Test profile: the kubeadm test double.
    pub kubeadm_double: Option<PathBuf>,
    /// Production profile, air-gapped: a directory of .deb files.
    pub packages: Option<PathBuf>,
    /// Production profile, air-gapped: an archive or directory of Kubernetes binaries
    /// (with SHA256SUMS), made into host binaries and preloaded container images.
    pub kubernetes: Option<PathBuf>,
    /// Production profile with `kubernetes`: container image archives (docker save or
    /// OCI) for images the artifacts lack (pause, etcd, CoreDNS, …).
    pub images: Option<PathBuf>,
    /// Production profile: install the Kubernetes packages from pkgs.k8s.io.
    pub from_repository: bool,
    pub source_date_epoch: u64,
}

/// The Kubernetes an air-gapped image carries: from which artifacts, checked how,
/// and where each container image came from (`manifest.json`, `--output json`).
#[derive(Debug, Serialize, serde::Deserialize, Clone)]
pub struct KubernetesUsed {
    pub version: String,
    pub layout: String,
    /// (file, sha256, checksum files it was verified against)
    pub files: Vec<(String, String, Vec<String>)>,
    /// (image reference, where it came from); "missing" images are pulled at first boot.
    pub images: Vec<(String, String)>,
    pub air_gapped: bool,
}

#[derive(Debug, Serialize, serde::Deserialize, Clone)]
pub struct Artifact {
    pub file: String,
    pub bytes: u64,
    /// Blocks actually used (the raw image is sparse).
    pub allocated_bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize, serde::Deserialize, Clone)]
pub struct Manifest {
    pub profile: String,
    pub source_date_epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesUsed>,
    pub build_seconds: f64,
    pub artifacts: Vec<Artifact>,
}

pub const IMAGE_NAME: &str = "kubeboot";

impl Manifest {
    /// What was built, one line per artifact (for people).
    pub fn summary(&self, out_dir: &Path) -> String {
        let mut text = format!(
            "image: {} profile built in {:.0} s in {}",
            self.profile,
            self.build_seconds,
            out_dir.display()
        );
        for f in &self.artifacts {
            text.push_str(&format!(
                "\n  {:24} {:>8.1} MiB ({:.1} MiB allocated)  sha256:{}",
                f.file,
                f.bytes as f64 / 1048576.0,
                f.allocated_bytes as f64 / 1048576.0,
                f.sha256
            ));
        }
        text
    }

    pub fn path(out_dir: &Path) -> PathBuf {
        out_dir.join("manifest.json")
    }
    pub fn read(out_dir: &Path) -> Option<Manifest> {
        serde_json::from_slice(&std::fs::read(Manifest::path(out_dir)).ok()?).ok()
    }
    pub fn file(&self, out_dir: &Path, suffix: &str) -> PathBuf {
        out_dir.join(format!("{IMAGE_NAME}{suffix}"))
    }
}

/// The default SOURCE_DATE_EPOCH: the last commit's time, so the same commit
/// builds the same image; a fixed date outside a git checkout.
pub fn default_source_date_epoch(dir: &Path) -> u64 {
    Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(1_767_225_600)
}

/// The Kubernetes packages the repository paths (--packages, --from-repository) install.
const KUBERNETES_PACKAGES: &str = "kubeadm,kubelet,kubectl,cri-tools,kubernetes-cni";

/// Where the production profile's Kubernetes comes from: exactly one source.
fn production_source(opts: &BuildOptions) -> Result<(), BuildError> {
    let given = [
        opts.kubernetes.is_some(),
        opts.packages.is_some(),
        opts.from_repository,
    ];
    match given.iter().filter(|g| **g).count() {
        1 => Ok(()),
        0 => Err(BuildError::NoKubernetes),
        _ => Err(BuildError::ManySources),
    }
}

/// The Kubernetes of an air-gapped production image, staged, with what was used.
fn stage_kubernetes(
    source: &Path,
    images: Option<&Path>,
    stage: &Path,
) -> Result<KubernetesUsed, KubernetesError> {
    let binaries = super::kubernetes::prepare(source)?;
    for line in binaries.report() {
        eprintln!("{line}");
    }
    let plan = binaries.plan(images)?;
    for line in plan.report() {
        eprintln!("{line}");
    }
    let image = plan.node_image(&binaries.version);
    if !image.offline {
        let pulled: Vec<&str> = plan
            .missing()
            .filter(|i| i.component != "coredns")
            .map(|i| i.name.as_str())
            .collect();
        eprintln!(
            "image: NOT AIR-GAPPED: nodes pull {} at first boot; give them in --images DIR to preload them",
            pulled.join(", ")
        );
    }
    binaries.stage(stage, &plan)?;
    Ok(KubernetesUsed {
        version: binaries.version.clone(),
        layout: serde_json::to_value(binaries.layout)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        files: binaries
            .archive
            .iter()
            .chain(&binaries.used)
            .map(|f| {
                let by = f
                    .checked_by
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                (f.name.clone(), f.sha256.clone(), by)
            })
            .collect(),
        images: plan
            .images
            .iter()
            .map(|i| {
                let from = match &i.from {
                    super::kubernetes::Provider::Archive { file, .. } => file.display().to_string(),
                    super::kubernetes::Provider::Binaries { .. } => "built from binaries".into(),
                    super::kubernetes::Provider::Missing => "missing".into(),
                };
                (i.name.clone(), from)
            })
            .collect(),
        air_gapped: image.offline,
    })
}

fn stage(opts: &BuildOptions, stage: &Path) -> Result<Option<KubernetesUsed>, BuildError> {
    let mut used = None;
    if let (Profile::Production, Some(source)) = (opts.profile, &opts.kubernetes) {
        used = Some(stage_kubernetes(source, opts.images.as_deref(), stage)?);
    } else if opts.images.is_some() {
        return Err(BuildError::ImagesWithoutKubernetes);
    }
    let bin = stage.join("usr/bin");
    std::fs::create_dir_all(&bin).map_err(BuildError::io(&bin))?;
    refuse_test_hooks(&opts.kubeboot_bin)?;
    let mut files = vec![(opts.kubeboot_bin.clone(), bin.join("kubeboot"))];
    if opts.profile == Profile::Test {
        let double = opts
            .kubeadm_double
            .clone()
            .ok_or(BuildError::NoKubeadmDouble)?;
        files.push((double, bin.join("kubeadm")));
    }
    for (from, to) in files {
        std::fs::copy(&from, &to).map_err(|source| BuildError::Stage {
            from: from.clone(),
            source,
        })?;
        // Smaller image, and no build paths in the binary's debug info.
        let _ = Command::new("strip").arg(&to).status();
    }
    Ok(used)
}

/// What only a binary built with the `test-crash-points` feature contains: the
/// name of its environment variable, kept reversed here so that this check does
/// not put the marker into every binary.
fn test_hook_marker() -> Vec<u8> {
    b"HSARC_TSET_TOOBEBUK".iter().rev().copied().collect()
}

/// The image ships no test hooks. Cargo unifies features per invocation, so
/// `cargo build -p kubeboot -p kubeboot-tests` gives `kubeboot` the test-only crash
/// points that kubeboot-tests asks for; such a binary is refused here.
fn refuse_test_hooks(kubeboot: &Path) -> Result<(), BuildError> {
    let bytes = std::fs::read(kubeboot).map_err(|source| BuildError::Read {
        path: kubeboot.to_path_buf(),
        source,
    })?;
    let marker = test_hook_marker();
    if bytes.windows(marker.len()).any(|w| w == marker) {
        return Err(BuildError::TestHooks(kubeboot.to_path_buf()));
    }
    Ok(())
}

/// Run mkosi; print its step lines (‣ …) as progress, keep everything in build.log.
pub fn build(opts: &BuildOptions) -> Result<Manifest, BuildError> {
    if !opts.mkosi_dir.join("mkosi.conf").exists() {
        return Err(BuildError::NoMkosiConf(opts.mkosi_dir.clone()));
    }
    if opts.profile == Profile::Production {
        production_source(opts)?;
        if opts.from_repository {
            ensure_kubernetes_key(&opts.mkosi_dir)?;
        }
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(BuildError::io(&opts.out_dir))?;
    std::fs::create_dir_all(&opts.cache_dir).map_err(BuildError::io(&opts.cache_dir))?;
    let staged = tempfile::tempdir().map_err(BuildError::io(&std::env::temp_dir()))?;
    let kubernetes = stage(opts, staged.path())?;
    let out_dir = std::fs::canonicalize(&opts.out_dir).map_err(BuildError::io(&opts.out_dir))?;
    let log_path = out_dir.join("build.log");
    let log = std::fs::File::create(&log_path).map_err(BuildError::io(&log_path))?;
    let mut cmd = Command::new("mkosi");
    cmd.current_dir(&opts.mkosi_dir)
        .env("SOURCE_DATE_EPOCH", opts.source_date_epoch.to_string())
        .args(["--profile", opts.profile.as_str(), "--force"])
        .arg(format!("--extra-tree={}:/", staged.path().display()))
        .arg(format!("--package-cache-dir={}", opts.cache_dir.display()))
        .arg(format!("--output-dir={}", out_dir.display()))
        .arg(format!("--output={IMAGE_NAME}"));
    if let Some(p) = &opts.packages {
        cmd.arg(format!("--package-directory={}", p.display()))
            .arg(format!("--package={KUBERNETES_PACKAGES}"));
    }
    if opts.from_repository {
        cmd.arg(format!(
            "--package-manager-tree={}",
            opts.mkosi_dir.join("kubernetes-repo/pkgmngr").display()
        ))
        .arg(format!("--package={KUBERNETES_PACKAGES}"));
    }
    cmd.arg("build")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    eprintln!(
        "image: building the {} profile with mkosi (log: {})",
        opts.profile.as_str(),
        log_path.display()
    );
    let mut child = cmd.spawn().map_err(BuildError::Mkosi)?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    let stderr = child.stderr.take().expect("piped");
    let err_log = log.clone();
    // mkosi reports its steps (‣ …) on stderr: show them as they come.
    let err_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(err_log.lock().expect("log"), "{line}");
            if line.starts_with('‣') {
                eprintln!(
                    "image: [{:>4.0}s] {}",
                    started.elapsed().as_secs_f64(),
                    line.trim_start_matches('‣').trim()
                );
            }
            lines.push(line);
        }
        lines
    });
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        let _ = writeln!(log.lock().expect("log"), "{line}");
    }
    let err_lines = err_thread.join().unwrap_or_default();
    let status = child.wait().map_err(BuildError::Mkosi)?;
    if !status.success() {
        let tail = &err_lines[err_lines.len().saturating_sub(15)..];
        return Err(BuildError::MkosiFailed {
            status,
            tail: tail.join("\n"),
            log: log_path,
        });
    }
    let raw = out_dir.join(format!("{IMAGE_NAME}.raw"));
    for done in crate::reproducible::normalize_disk(&raw, opts.source_date_epoch)? {
        eprintln!("image: [{:>4.0}s] {done}", started.elapsed().as_secs_f64());
    }
    let archive = out_dir.join(crate::pxe::ROOT_ARCHIVE);
    let bytes = crate::pxe::write_root_archive(&raw, &archive)?;
    eprintln!(
        "image: [{:>4.0}s] root file system for diskless boots: {} ({:.0} MiB)",
        started.elapsed().as_secs_f64(),
        archive.display(),
        bytes as f64 / 1048576.0
    );
    let build_seconds = started.elapsed().as_secs_f64();
    let manifest = Manifest {
        profile: opts.profile.as_str().into(),
        source_date_epoch: opts.source_date_epoch,
        kubernetes,
        build_seconds,
        artifacts: describe(&out_dir)?,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("serializes");
    let path = Manifest::path(&out_dir);
    kubeboot_core::host::write_file_atomic(&path, &json, 0o644).map_err(BuildError::io(&path))?;
    Ok(manifest)
}

/// Size and SHA-256 of each output file (not the log or the manifest).
pub fn describe(out_dir: &Path) -> Result<Vec<Artifact>, BuildError> {
    use std::os::unix::fs::MetadataExt;
    let mut files: Vec<PathBuf> = std::fs::read_dir(out_dir)
        .map_err(BuildError::io(out_dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.is_symlink())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(IMAGE_NAME) && !n.ends_with(".log") && n != "manifest.json"
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).map_err(BuildError::io(p))?;
            Ok(Artifact {
                file: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                bytes: meta.len(),
                allocated_bytes: meta.blocks() * 512,
                sha256: crate::sha256_file(p)?,
            })
        })
        .collect()
}

/// The fingerprint of pkgs.k8s.io's signing key ("isv:kubernetes OBS Project"),
/// as published with the Kubernetes install docs. A fetched key must have it.
const KUBERNETES_KEY_FINGERPRINT: &str = "DE15B14486CD377B9E876E1A234654DA9A296436";

/// pkgs.k8s.io's signing key, fetched once into the production profile's apt
/// tree, size-limited and checked against `KUBERNETES_KEY_FINGERPRINT`.
fn ensure_kubernetes_key(mkosi_dir: &Path) -> Result<(), BuildError> {
    let key = mkosi_dir.join("kubernetes-repo/pkgmngr/etc/apt/keyrings/kubernetes.asc");
    if key.exists() {
        let body = std::fs::read(&key).map_err(BuildError::io(&key))?;
        let from = key.display().to_string();
        return check_signing_key(&body, KUBERNETES_KEY_FINGERPRINT, &from);
    }
    let body = fetch_kubernetes_key()?;
    // ASCII-armored, which apt reads from a .asc file.
    kubeboot_core::host::write_file_atomic(&key, &body, 0o644).map_err(BuildError::io(&key))
}

/// pkgs.k8s.io's signing key, downloaded (at most `MAX_KEY_BYTES`) and checked.
fn fetch_kubernetes_key() -> Result<Vec<u8>, BuildError> {
    let url = "https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key";
    let config = kubeboot_core::tls::client_config(None).map_err(BuildError::HttpClient)?;
    let client = kubeboot_core::tls::https_client(config, std::time::Duration::from_secs(30))
        .map_err(|e| BuildError::HttpClient(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| BuildError::Unreachable {
            url,
            why: kubeboot_core::tls::describe_http_error(&e),
        })?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(response, super::openpgp::MAX_KEY_BYTES as u64 + 1),
        &mut body,
    )
    .map_err(|source| BuildError::Download { url, source })?;
    check_signing_key(&body, KUBERNETES_KEY_FINGERPRINT, url)?;
    Ok(body)
}

/// The key (read from `from`) is one OpenPGP public key whose fingerprint is `expected`.
fn check_signing_key(armored: &[u8], expected: &str, from: &str) -> Result<(), BuildError> {
    let found =
        super::openpgp::primary_fingerprint(armored).map_err(|source| BuildError::UnusableKey {
            from: from.to_string(),
            source,
        })?;
    if found != expected {
        return Err(BuildError::WrongKey {
            from: from.to_string(),
            found,
            expected: expected.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_signing_key, refuse_test_hooks, test_hook_marker};

    #[test]
    fn a_signing_key_must_have_the_kept_fingerprint() {
        let key = include_bytes!("../../tests/vectors/openpgp/debian-bookworm-stable.asc");
        check_signing_key(key, "4D64FEC119C2029067D6E791F8D2585B8783D481", "k.asc").unwrap();
        let err = check_signing_key(key, super::KUBERNETES_KEY_FINGERPRINT, "k.asc").unwrap_err();
        assert!(err.to_string().contains("not DE15B144"), "{err}");
        let err = check_signing_key(b"<html>", "X", "k.asc").unwrap_err();
        assert!(err.to_string().starts_with("k.asc: not a usable"), "{err}");
    }

    #[test]
    fn a_binary_with_test_hooks_is_refused_and_a_clean_one_passes() {
        assert_eq!(test_hook_marker(), b"KUBEBOOT_TEST_CRASH");
        let dir = tempfile::tempdir().unwrap();
        let hooked = dir.path().join("hooked");
        let mut bytes = vec![0u8; 4096];
        bytes.extend_from_slice(b"\0KUBEBOOT_TEST_CRASH\0");
        std::fs::write(&hooked, &bytes).unwrap();
        let err = refuse_test_hooks(&hooked).unwrap_err().to_string();
        assert!(err.contains("test-only crash points"), "{err}");
        assert!(err.contains("-p kubeboot --bin kubeboot"), "{err}");
        let clean = dir.path().join("clean");
        std::fs::write(&clean, b"\0KUBEBOOT_TEST_\0CRASH").unwrap();
        refuse_test_hooks(&clean).unwrap();
    }
}
