//! The node image (DESIGN.md §5): building it with mkosi (`build`), booting it
//! under qemu (`vm`), and the PXE set (`pxe`). Used by `kubeboot image …`,
//! `kubeboot up` and tests/e2e.

pub mod build;
pub mod kubernetes;
pub mod oci;
pub mod openpgp;
pub mod pxe;
pub mod segment;
pub mod vm;

pub use build::{BuildOptions, Manifest, Profile};
