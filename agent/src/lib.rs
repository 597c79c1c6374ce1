//! kubeboot-agent: what runs on the node. The first-boot agent turns a node
//! document into `kubeadm init` / `kubeadm join`, phase by phase, resumable,
//! reporting its status at every step.
//!
//! - [`source`]: where the document comes from (kernel command line, cloud-init, file, HTTPS)
//! - [`agent`]: the persisted phase machine (docs/design.md §3)
//! - [`kubeadm`]: running kubeadm (its configuration is rendered by `kubeboot_core::kubeadm`)
//! - [`report`]: the node's HTTPS reporter (durable outbox, ordered delivery)
//! - [`cluster`]: the Ready wait and the pod network on this host
//!
//! The shared types (document, status, host) are in `kubeboot-core`; what it
//! asks and decides of the cluster (discovery, boot reports, replacement) in
//! `kubeboot-kube`; the operator's tools in `kubeboot-serve` and `kubeboot-image`.

pub mod agent;
pub mod cluster;
pub mod kubeadm;
pub mod report;
pub mod source;
