//! Host facts (CPUs, memory, disk, kernel, addresses) via sysinfo, reported in
//! status events and checked in preflight.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System};

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
        let var_lib = host.path("/var/lib");
        let disks = Disks::new_with_refreshed_list();
        let disk_free_bytes = disks
            .list()
            .iter()
            .filter(|d| var_lib.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map(|d| d.available_space())
            .unwrap_or(0);
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

fn is_link_local(a: &std::net::IpAddr) -> bool {
    match a {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}
