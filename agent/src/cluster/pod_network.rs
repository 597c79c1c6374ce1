//! The pod network an air-gapped node can have without an add-on download:
//! Debian's CNI plugins (bridge, host-local, portmap, loopback) on this node's
//! podCIDR (allocated by kube-controller-manager from `[cluster] pod_subnet`),
//! and one route per other node (`podCIDR via InternalIP`) kept current by
//! `kubeboot pod-routes` — the "host-gw" model: every node on one L2 segment.
//!
//! If another CNI configuration is already in /etc/cni/net.d (an image or an
//! operator brought its own network add-on), kubeboot writes none.

use std::process::Command;

use kubeboot_core::host::Host;
use kubeboot_kube::pod_routes::PodRoute;

pub const CNI_DIR: &str = "/etc/cni/net.d";
pub const CONFIG_FILE: &str = "/etc/cni/net.d/10-kubeboot-bridge.conflist";
pub const BRIDGE: &str = "cni0";

/// The bridge network for this node's pod subnet.
pub fn conflist(pod_cidr: &str) -> String {
    let v = serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "kubeboot",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    });
    serde_json::to_string_pretty(&v).expect("serializes") + "\n"
}

/// Some CNI configuration already present (ours or anyone's).
pub fn configured(host: &Host) -> bool {
    std::fs::read_dir(host.path(CNI_DIR))
        .map(|d| {
            d.filter_map(Result::ok).any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".conf") || n.ends_with(".conflist") || n.ends_with(".json")
            })
        })
        .unwrap_or(false)
}

/// Write our bridge configuration, unless a CNI configuration exists. Returns whether it wrote.
pub fn ensure(host: &Host, pod_cidr: &str) -> kubeboot_core::host::HostResult<bool> {
    if configured(host) {
        return Ok(false);
    }
    host.write_atomic(CONFIG_FILE, conflist(pod_cidr).as_bytes(), 0o644)?;
    Ok(true)
}

/// The route to another node's pods: `ip route replace CIDR via IP` (idempotent).
pub fn replace_route(cidr: &str, via: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["route", "replace", cidr, "via", via])
        .output()
        .map_err(|e| format!("ip route: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip route replace {cidr} via {via}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Set the routes to every other node's pod subnet (`dry_run`: only say them).
/// Returns them as `CIDR via IP (NODE)`.
pub fn apply_routes(
    routes: &[PodRoute],
    this_node: &str,
    dry_run: bool,
) -> Result<Vec<String>, String> {
    let mut set = Vec::new();
    for r in routes.iter().filter(|r| r.node != this_node) {
        if !dry_run {
            replace_route(&r.pod_cidr, &r.via)?;
        }
        set.push(format!("{} via {} ({})", r.pod_cidr, r.via, r.node));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_is_a_bridge_on_the_pod_cidr() {
        let v: serde_json::Value = serde_json::from_str(&conflist("10.244.3.0/24")).unwrap();
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.3.0/24"
        );
    }

    #[test]
    fn an_existing_cni_configuration_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let host = Host::system_at(root.path());
        assert!(ensure(&host, "10.244.1.0/24").unwrap());
        assert!(host.exists(CONFIG_FILE));
        std::fs::remove_file(host.path(CONFIG_FILE)).unwrap();
        host.write_atomic("/etc/cni/net.d/05-other.conflist", b"{}", 0o644)
            .unwrap();
        assert!(!ensure(&host, "10.244.1.0/24").unwrap());
        assert!(!host.exists(CONFIG_FILE));
    }

    #[test]
    fn routes_go_to_every_other_node_and_a_dry_run_only_says_them() {
        let r = |node: &str, cidr: &str, via: &str| PodRoute {
            node: node.into(),
            pod_cidr: cidr.into(),
            via: via.into(),
        };
        let routes = [
            r("a", "10.244.0.0/24", "10.0.0.1"),
            r("b", "10.244.1.0/24", "10.0.0.2"),
        ];
        assert_eq!(
            apply_routes(&routes, "a", true).unwrap(),
            ["10.244.1.0/24 via 10.0.0.2 (b)"]
        );
    }
}
