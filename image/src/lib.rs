//! kubeboot-image: the node image (docs/design.md §5): building it with mkosi
//! (`build`), the Kubernetes binaries and images it carries (`kubernetes`, `oci`),
//! booting it under qemu (`vm`), and the
//! PXE set (`pxe`). Used by `kubeboot image …`, `kubeboot up` (in the CLI) and tests/e2e.

pub mod build;
pub mod disk;
pub mod kubernetes;
pub mod oci;
pub mod openpgp;
pub mod pxe;
pub mod reproducible;
pub mod vm;

pub use build::{BuildOptions, Manifest, Profile};

/// The SHA-256 of a file, hex (image artifacts, checked Kubernetes binaries).
/// Fails with [`kubernetes::KubernetesError::Io`], naming the file.
pub fn sha256_file(p: &std::path::Path) -> Result<String, kubernetes::KubernetesError> {
    kubernetes::sha256(p)
}

/// Each module's error as the CLI prints it: `?` into a `String` error keeps
/// the message (as [`kubernetes::KubernetesError`] does).
macro_rules! message_of {
    ($($error:ty),+) => {
        $(impl From<$error> for String {
            fn from(e: $error) -> String {
                e.to_string()
            }
        })+
    };
}

message_of!(
    build::BuildError,
    disk::DiskError,
    oci::OciError,
    openpgp::OpenPgpError,
    pxe::PxeError,
    reproducible::ReproducibleError,
    vm::VmError
);

/// A program built next to this kubeboot binary (cargo's target directory).
pub fn sibling(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join(name);
    p.exists().then_some(p)
}
