//! kubeboot-agent: what runs on the node. The first-boot agent turns a node
//! document into `kubeadm init` / `kubeadm join`, phase by phase, resumable,
//! reporting its status at every step.
//!
//! - [`source`]: where the document comes from (kernel command line, cloud-init, file, HTTPS)
//! - [`agent`]: the persisted phase machine (docs/design.md §3)
//! - [`discovery`]: verifying the cluster before trusting it (cluster-info, JWS, CA pin)
//! - [`kubeadm`]: running kubeadm (its configuration is rendered by `kubeboot_core::kubeadm`)
//! - [`report`]: the node's HTTPS reporter (durable outbox, ordered delivery)
//! - [`cluster`]: the cluster's API as the node sees it (Ready wait, annotations, Events)
//! - [`replace`]: cleaning up after a dead node this one replaces (etcd member, Node)
//!
//! The shared types (document, status, host) are in `kubeboot-core`; the
//! operator's tools in `kubeboot-serve` and `kubeboot-image`.

pub mod agent;
pub mod cluster;
pub mod discovery;
pub mod kubeadm;
pub mod replace;
pub mod report;
pub mod source;
