//! `kubeboot lab`: pieces of `kubeboot up`'s local VM lab for scripts that
//! build their own (tests/e2e/real-cluster), so both use one definition.

use clap::{Args, Subcommand};

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

fn control_planes(args: &[String]) -> Result<Vec<(String, String)>, String> {
    args.iter()
        .map(|a| {
            let (name, address) = a
                .split_once('=')
                .ok_or_else(|| format!("{a:?}: expected NAME=ADDRESS (cp1=10.88.0.11)"))?;
            let ok_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok_name {
                return Err(format!(
                    "{a:?}: the name may hold letters, digits, '-' and '.'"
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
