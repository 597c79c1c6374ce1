//! `kubeboot up`: a local cluster of VMs from the node image. The arguments
//! here; the stages in [`cluster`]; the VMs' own network in [`segment`].

mod cluster;
pub(crate) mod segment;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use self::cluster::{self as up, EtcdTopology, UpOptions};
use kubeboot_image::Profile;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpProfile {
    /// production if Kubernetes is at hand (--kubernetes, KUBEBOOT_KUBERNETES, --packages), else test.
    Auto,
    Production,
    Test,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Everything lives in --work (default out/up): the image, the bundle, the receiver's data, \
seeds, VM disks and serial logs.

Production (real Kubernetes, air-gapped image from --kubernetes or KUBEBOOT_KUBERNETES): \
--control-planes N (cp-1 runs kubeadm init --upload-certs, cp-2… join with the certificate key) and \
--workers N, on a \
private network namespace made for the run (bridge 10.88.0.0/24, no route out; needs root) with \
haproxy on 10.88.0.2:6443 as the control-plane endpoint and, with joining control planes, one \
external etcd on 10.88.0.1:2379 (--etcd). Nodes boot in stages: cp-1, then each \
joining control plane, then the workers, each once the one before is done. When every node is done, up prints the \
admin kubeconfig and waits; Ctrl-C tears everything down. With --same-user-data every node of a role \
boots from one node group's user-data (as in an autoscaling group): the control planes boot together and \
the receiver elects the one that runs kubeadm init.

Test: kubeadm is tests/'s test double; VMs use qemu user networking with restrict=on and reach \
only the receiver and the cluster endpoint on 10.0.2.100.

Exit codes: 0 every node reached done, 1 a node failed or --timeout passed, 2 bad arguments.")]
pub struct UpArgs {
    /// Worker nodes.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    /// Control-plane nodes in all. Production: the first runs `kubeadm init`, the
    /// others join with the certificate key (default 1). Test: all of them join (default 0).
    #[arg(long, value_name = "N")]
    control_planes: Option<u32>,
    /// Which image to build and boot (auto: production when Kubernetes binaries or packages are at hand).
    #[arg(long, value_enum, default_value = "auto")]
    profile: UpProfile,
    /// A directory of Kubernetes .deb packages for an air-gapped production image.
    #[arg(long, value_name = "DIR")]
    packages: Option<PathBuf>,
    /// An archive or directory of Kubernetes binaries with SHA256SUMS (air-gapped production image).
    #[arg(long, value_name = "ARCHIVE|DIR", env = "KUBEBOOT_KUBERNETES")]
    kubernetes: Option<PathBuf>,
    /// Where up keeps everything: the image, bundle, receiver data, seeds, VM disks, serial logs.
    #[arg(long, value_name = "DIR", default_value = "out/up")]
    work: PathBuf,
    /// Production: where the cluster's etcd runs. `external`: one etcd on the
    /// segment (10.88.0.1:2379, certificates made by up), kubeadm's external-etcd
    /// topology; the default with more than one control plane, because a stacked
    /// control-plane join gives each etcd member-add call 2 s, which an emulated
    /// (TCG) control plane can miss. `stacked`: etcd inside each control plane.
    #[arg(long, value_enum)]
    etcd: Option<EtcdTopology>,
    /// Production: every node of a role boots from one user-data, as in a cloud
    /// autoscaling group: a node group per role (`serve group add`), whose pointer
    /// document is every node's seed. The receiver (`--fresh-credentials`) mints
    /// each machine's credentials; the control planes boot together and the
    /// receiver elects the one that runs `kubeadm init`, the others join once it is done.
    #[arg(long)]
    same_user_data: bool,
    /// The mkosi configuration to build the image from.
    #[arg(long, value_name = "DIR", default_value = "mkosi")]
    mkosi_dir: PathBuf,
    /// Rebuild the image even if one for this profile exists.
    #[arg(long)]
    rebuild: bool,
    /// Give up after this many seconds (bootstrap only). A production cluster boots
    /// its nodes one stage at a time; under qemu TCG each control plane takes 10–15 min.
    #[arg(long, default_value_t = 5400)]
    timeout: u64,
}

pub fn run(a: UpArgs) -> u8 {
    let profile = match a.profile {
        UpProfile::Test => Profile::Test,
        UpProfile::Production => Profile::Production,
        UpProfile::Auto => up::auto_profile(a.packages.as_deref(), a.kubernetes.as_deref()),
    };
    let opts = UpOptions {
        profile,
        workers: a.workers,
        control_planes: a.control_planes,
        packages: a.packages,
        kubernetes: a.kubernetes,
        work: a.work,
        etcd: a.etcd,
        same_user_data: a.same_user_data,
        rebuild: a.rebuild,
        timeout: Duration::from_secs(a.timeout),
        mkosi_dir: a.mkosi_dir,
    };
    match up::run(&opts) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
