//! Host facts (CPUs, memory, disk, kernel, addresses) via sysinfo (free space:
//! statvfs), reported in status events and checked in preflight.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, Networks, RefreshKind, System};

use super::Host;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Facts {
    pub cpus: usize,
    pub memory_bytes: u64,
    /// Free space on the file system holding /var/lib (kubelet, etcd, images).
    pub disk_free_bytes: u64,
    pub swap_bytes: u64,
    pub kernel: String,
    pub addresses: Vec<String>,
}

impl Facts {
    pub fn gather(host: &Host) -> Facts {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram().with_swap()),
        );
        let disk_free_bytes = free_bytes(&host.path("/var/lib"));
        let networks = Networks::new_with_refreshed_list();
        let mut addresses: Vec<String> = networks
            .values()
            .flat_map(|n| n.ip_networks().iter().map(|ip| ip.addr))
            .filter(|a| !a.is_loopback() && !is_link_local(a))
            .map(|a| a.to_string())
            .collect();
        addresses.sort();
        addresses.dedup();
        Facts {
            cpus: sys.cpus().len(),
            memory_bytes: sys.total_memory(),
            disk_free_bytes,
            swap_bytes: sys.total_swap(),
            kernel: System::kernel_version().unwrap_or_default(),
            addresses,
        }
    }
}

/// Space an unprivileged writer may still use on the file system holding `path`
/// (or its nearest existing parent), from statvfs. Any file system counts: a
/// diskless node's /var/lib is on a tmpfs, which sysinfo's disk list leaves out
/// (measured: it reported 0 MiB there, and preflight refused the node). 0 when
/// nothing answers.
pub fn free_bytes(path: &std::path::Path) -> u64 {
    path.ancestors()
        .find_map(|p| nix::sys::statvfs::statvfs(p).ok())
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}

fn is_link_local(a: &std::net::IpAddr) -> bool {
    match a {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The interface of the IPv4 default route with the lowest metric, from the
/// text of `/proc/net/route` (destination and mask 0, flags up).
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let metric: u32 = f.get(6)?.parse().ok()?;
            let default = f.get(1)? == &"00000000" && f.get(7)? == &"00000000";
            (default && flags & 1 == 1).then(|| (metric, f[0].to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

impl Host {
    /// This node's IPv4 address for the cluster: the address of the interface
    /// holding the IPv4 default route (what kubeadm chooses on an IPv4 host), or, on
    /// a host whose IPv4 network has no default route (an air-gapped segment; qemu's
    /// restricted user network, whose DHCP hands out no gateway) the address it
    /// sends from to reach `endpoint` (HOST:PORT). Left to itself there, kubeadm
    /// takes the IPv6 default route's address. None without a route table (a test
    /// root without /proc) or an IPv4 route to the endpoint.
    pub fn cluster_ipv4(&self, endpoint: &str) -> Option<ClusterIpv4> {
        let routes = self.read_to_string("/proc/net/route").ok()?;
        match default_route_interface(&routes).and_then(|iface| interface_ipv4(&iface)) {
            Some(a) => Some(ClusterIpv4::DefaultRoute(a)),
            None => source_ipv4_toward(endpoint).map(ClusterIpv4::TowardEndpoint),
        }
    }
}

/// A node's IPv4 address for the cluster and how [`Host::cluster_ipv4`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterIpv4 {
    /// The address of the interface holding the IPv4 default route.
    DefaultRoute(std::net::Ipv4Addr),
    /// With no IPv4 default route: the address the kernel sends from toward the
    /// cluster endpoint.
    TowardEndpoint(std::net::Ipv4Addr),
}

impl ClusterIpv4 {
    pub fn address(self) -> std::net::Ipv4Addr {
        match self {
            ClusterIpv4::DefaultRoute(a) | ClusterIpv4::TowardEndpoint(a) => a,
        }
    }
}

/// The first IPv4 address of interface `iface` that is not link-local.
fn interface_ipv4(iface: &str) -> Option<std::net::Ipv4Addr> {
    let networks = Networks::new_with_refreshed_list();
    networks
        .get(iface)?
        .ip_networks()
        .iter()
        .find_map(|n| match n.addr {
            std::net::IpAddr::V4(a) if !a.is_link_local() => Some(a),
            _ => None,
        })
}

/// The IPv4 address this host sends from to reach `endpoint` (HOST:PORT; a name is
/// resolved): the kernel's route lookup for a connected UDP socket, which sends
/// nothing. None when the endpoint has no IPv4 address or no IPv4 route.
pub fn source_ipv4_toward(endpoint: &str) -> Option<std::net::Ipv4Addr> {
    use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
    let target = endpoint.to_socket_addrs().ok()?.find(SocketAddr::is_ipv4)?;
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(target).ok()?;
    match socket.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{default_route_interface, free_bytes, source_ipv4_toward, ClusterIpv4};

    /// /dev/shm is a tmpfs (as a diskless node's root is); a path below it that
    /// does not exist yet still gets that file system's free space.
    #[test]
    fn free_space_counts_a_tmpfs_and_a_path_not_made_yet() {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(
            mounts
                .lines()
                .any(|l| l.starts_with("tmpfs /dev/shm tmpfs ")),
            "this test needs /dev/shm to be a tmpfs"
        );
        let shm = free_bytes(std::path::Path::new("/dev/shm"));
        assert!(shm > 0);
        let below = free_bytes(std::path::Path::new("/dev/shm/kubeboot-none/var/lib"));
        assert!(
            below > 0 && below.abs_diff(shm) < 64 << 20,
            "{below} vs {shm}"
        );
    }

    /// The real thing on this machine: the address `ip` names for the interface
    /// of the IPv4 default route.
    #[test]
    fn the_default_route_address_is_what_ip_says() {
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let route = ip(&["-4", "route", "show", "default"]);
        let dev = route
            .split_whitespace()
            .skip_while(|w| *w != "dev")
            .nth(1)
            .unwrap_or_else(|| panic!("this test needs an IPv4 default route: {route:?}"));
        let addrs = ip(&["-4", "-o", "addr", "show", "dev", dev]);
        let want: std::net::Ipv4Addr = addrs
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no IPv4 address on {dev}: {addrs:?}"));
        let host = crate::host::Host::new("/", std::ffi::OsString::new());
        // The default route's address wins over the one toward the endpoint.
        assert_eq!(
            host.cluster_ipv4("127.0.0.1:6443"),
            Some(ClusterIpv4::DefaultRoute(want))
        );
    }

    /// The kernel's own route lookup: loopback from loopback, the default route's
    /// address toward its gateway, nothing toward an IPv6-only endpoint.
    #[test]
    fn the_source_address_toward_an_endpoint_is_the_kernels_choice() {
        assert_eq!(
            source_ipv4_toward("127.0.0.1:6443"),
            Some(std::net::Ipv4Addr::LOCALHOST)
        );
        assert_eq!(source_ipv4_toward("[::1]:6443"), None);
        assert_eq!(source_ipv4_toward("not an endpoint"), None);
        let out = std::process::Command::new("ip")
            .args(["-4", "route", "show", "default"])
            .output()
            .unwrap();
        let route = String::from_utf8(out.stdout).unwrap();
        let gateway = route.split_whitespace().skip_while(|w| *w != "via").nth(1);
        let gateway =
            gateway.unwrap_or_else(|| panic!("this test needs an IPv4 default gateway: {route:?}"));
        let host = crate::host::Host::new("/", std::ffi::OsString::new());
        let default_route = host
            .cluster_ipv4("127.0.0.1:6443")
            .map(ClusterIpv4::address);
        assert!(default_route.is_some());
        assert_eq!(
            source_ipv4_toward(&format!("{gateway}:6443")),
            default_route
        );
    }

    const TABLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth1\t00000000\t0158580A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
        eth0\t00000000\t0202000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        assert_eq!(default_route_interface(TABLE).as_deref(), Some("eth0"));
    }

    #[test]
    fn no_default_route_means_none() {
        let only_subnet: String = TABLE
            .lines()
            .filter(|l| l.split_whitespace().nth(1) != Some("00000000"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(only_subnet.contains("0002000A"));
        assert_eq!(default_route_interface(&only_subnet), None);
        // A default route that is down (flags without RTF_UP) does not count.
        let down = TABLE.replace("0003", "0002");
        assert_eq!(default_route_interface(&down), None);
    }
}
