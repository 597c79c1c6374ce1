//! `kubeboot lab`: pieces of `kubeboot up`'s local VM lab for scripts that
//! build their own (tests/e2e/real-cluster), so both use one definition.

use clap::{Args, Subcommand};
use kubeboot_core::document::formats::is_dns_name;

use super::up::segment;

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Print the control-plane load balancer's haproxy configuration
    /// (TCP on 10.88.0.2:6443, the lab segment's endpoint; /readyz checks).
    HaproxyConfig(HaproxyArgs),
    /// Make `up`'s VM network segment and hold it until SIGTERM or SIGINT: a
    /// network namespace (no route out), bridge br0 on 10.88.0.1 and .2, one tap per VM.
    Segment(SegmentArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "\
Prints the layout as one JSON line once everything exists: {\"namespace\", \"operator\", \
\"endpoint\", \"control_planes\": [{\"tap\", \"mac\", \"address\", \"network_config\"}…], \"workers\": […]} \
(control planes from 10.88.0.11, workers from 10.88.0.21), then waits. On SIGTERM, SIGINT or \
SIGHUP the namespace and everything in it is deleted. Start what runs on the segment with \
`ip netns exec NAMESPACE …`. Needs root.

Exit codes: 0 held and removed, 1 the segment could not be made, 2 bad arguments.")]
struct SegmentArgs {
    /// The network namespace to create (it must not exist).
    #[arg(long, value_name = "NAME")]
    namespace: String,
    /// Taps for this many control planes (1–9).
    #[arg(long, value_name = "N", default_value_t = 1)]
    control_planes: u32,
    /// Taps for this many workers (0–9).
    #[arg(long, value_name = "N", default_value_t = 0)]
    workers: u32,
}

#[derive(Args, Debug)]
#[command(after_help = "\
The first control plane is the init node: when every health check fails (a control plane slow \
under TCG), haproxy still sends connections to it.

Example: kubeboot lab haproxy-config cp1=10.88.0.11 cp2=10.88.0.12 > haproxy.cfg

Exit codes: 0 printed, 2 bad arguments.")]
struct HaproxyArgs {
    /// NAME=ADDRESS of each control plane, the init node first.
    #[arg(value_name = "NAME=ADDRESS", required = true)]
    control_planes: Vec<String>,
}

pub fn run(args: LabArgs) -> u8 {
    match args.command {
        LabCommand::Segment(a) => hold_segment(&a),
        LabCommand::HaproxyConfig(a) => match control_planes(&a.control_planes) {
            Ok(cps) => {
                print!("{}", segment::haproxy_config(&cps));
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
    }
}

/// The ports of `n` control planes (`control_plane`) or workers.
fn ports(control_plane: bool, n: u32) -> Result<Vec<segment::Port>, String> {
    (1..=n)
        .map(|i| segment::Port::new(control_plane, i))
        .collect()
}

fn hold_segment(a: &SegmentArgs) -> u8 {
    if a.control_planes == 0 {
        eprintln!("error: --control-planes: at least 1");
        return 2;
    }
    let (control_planes, workers) = match (ports(true, a.control_planes), ports(false, a.workers)) {
        (Ok(c), Ok(w)) => (c, w),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let stop = kubeboot_image::vm::stop_on_signals();
    let made = segment::Segment::create(&a.namespace).and_then(|seg| {
        for p in control_planes.iter().chain(&workers) {
            seg.add_tap(p)?;
        }
        Ok(seg)
    });
    let seg = match made {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let json = |ps: &[segment::Port]| -> Vec<serde_json::Value> {
        ps.iter()
            .map(|p| {
                serde_json::json!({
                    "tap": p.tap, "mac": p.mac, "address": p.address,
                    "network_config": p.network_config(),
                })
            })
            .collect()
    };
    println!(
        "{}",
        serde_json::json!({
            "namespace": seg.namespace,
            "operator": segment::OPERATOR,
            "endpoint": segment::ENDPOINT,
            "control_planes": json(&control_planes),
            "workers": json(&workers),
        })
    );
    eprintln!(
        "lab: segment {} is up ({} taps); SIGTERM or Ctrl-C removes it",
        seg.namespace,
        control_planes.len() + workers.len()
    );
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(seg);
    eprintln!("lab: segment {} removed", a.namespace);
    0
}

fn control_planes(args: &[String]) -> Result<Vec<(String, String)>, String> {
    args.iter()
        .map(|a| {
            let (name, address) = a
                .split_once('=')
                .ok_or_else(|| format!("{a:?}: expected NAME=ADDRESS (cp1=10.88.0.11)"))?;
            if !is_dns_name(name) {
                return Err(format!(
                    "{a:?}: the name is a Node name (lowercase a-z, 0-9, '-', '.')"
                ));
            }
            address
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("{a:?}: {address:?} is not an IP address"))?;
            Ok((name.to_string(), address.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_planes_are_name_address_pairs() {
        let ok = control_planes(&["cp1=10.88.0.11".into(), "cp2=10.88.0.12".into()]).unwrap();
        assert_eq!(ok[1], ("cp2".to_string(), "10.88.0.12".to_string()));
        for bad in ["cp1", "=10.0.0.1", "cp1=host", "c p=10.0.0.1"] {
            assert!(control_planes(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    /// haproxy itself (installed by scripts/setup-image.sh) accepts the configuration.
    #[test]
    fn haproxy_accepts_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("haproxy.cfg");
        let cps = control_planes(&["cp1=10.88.0.11".into(), "cp2=10.88.0.12".into()]).unwrap();
        std::fs::write(&cfg, segment::haproxy_config(&cps)).unwrap();
        let out = std::process::Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .expect("haproxy (scripts/setup-image.sh installs it)");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
