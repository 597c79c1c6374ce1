//! End-to-end tests of `kubeboot agent` against a temporary root and the
//! kubeadm test double. See harness.rs for what the test node provides.

mod bundle;
mod cloud_init;
mod control_plane;
mod dashboard;
mod discover;
mod double;
mod election;
mod etcd_cluster;
mod faults;
mod harness;
mod images;
// The kubeadm double's transcription of kubeadm's types, for the known-answer test.
#[allow(dead_code)]
#[path = "../src/kubeadm_double/schema.rs"]
mod kubeadm_schema;
mod lab;
mod mint;
mod minted;
mod node_authorizer;
mod pod_routes;
mod real_control_plane;
mod real_kubeadm;
mod receiver;
mod replace;
mod report;
mod resume;
mod roles;
mod secrets;
mod serve;
mod slow_clients;
mod sources;
#[path = "../src/tls_server.rs"]
mod tls_server;
