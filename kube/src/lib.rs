//! kubeboot-kube: a cluster as kubeboot sees it through its API and its etcd.
//! What the node agent and `kubeboot serve` both decide about a cluster lives
//! here once, so neither depends on the other.
//!
//! - [`client`]: clients from a kubeconfig or pinned to a CA (bounded calls)
//! - [`discovery`]: verifying the cluster before trusting it (cluster-info, JWS, CA pin, fence)
//! - [`node`]: a Node's registration, podCIDR and Ready condition
//! - [`pod_routes`]: every node's pod subnet and InternalIP
//! - [`boot`]: a node's boot story on its Node (annotations) and as Events
//! - [`replace`]: cleaning up after a dead node (etcd member, Node), the
//!   kubeadm-certs Secret sealed and opened

pub mod boot;
pub mod client;
pub mod discovery;
pub mod node;
pub mod pod_routes;
pub mod replace;
