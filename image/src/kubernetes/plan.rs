//! The container images kubeadm will ask for (`kubeadm config images list` of the
//! release's own kubeadm) and where each comes from, in this order: an archive in
//! `--images DIR`; the release's own `docker save` archive (server release);
//! built from a binary of the artifacts (etcd: else from this machine's etcd,
//! `Binaries::local_etcd`); or nowhere, said plainly: the kubelet then pulls it at
//! first boot, so the image is not air-gapped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kubeboot_core::kubeadm::NodeImage;

use super::archives::{self, split, tag};
use super::{Binaries, KubernetesError, Layout};

/// Binaries of the artifacts an image can be built from, when no archive gives it.
pub const FROM_BINARIES: [&str; 7] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "etcd",
    "etcdctl",
    "pause",
];
const CONTROL_PLANE: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Which nodes import an image (agent/src/agent/images.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    Node,
    ControlPlane,
}

impl Group {
    pub fn dir(self) -> &'static str {
        match self {
            Group::Node => "node",
            Group::ControlPlane => "control-plane",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Provider {
    /// An image archive, written into the image under the planned name.
    Archive { file: PathBuf, named: String },
    /// Built at image build time from these binaries.
    Binaries { files: Vec<PathBuf> },
    /// Not in the image: pulled at first boot.
    Missing,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedImage {
    /// `kube-apiserver`, `etcd`, `coredns`, …
    pub component: String,
    /// The reference the image carries.
    pub name: String,
    /// What kubeadm asks for by default.
    pub wanted: String,
    pub group: Group,
    pub from: Provider,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImagePlan {
    pub images: Vec<PlannedImage>,
}

/// kubeadm's own list of the images a release runs.
fn wanted(b: &Binaries) -> Result<Vec<String>, KubernetesError> {
    let kubeadm = b.bin.join("kubeadm");
    let args = [
        "config",
        "images",
        "list",
        "--kubernetes-version",
        &b.version,
    ];
    let out = std::process::Command::new(&kubeadm)
        .args(args)
        .output()
        .map_err(|e| KubernetesError::io(&kubeadm, e))?;
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('/') && tag(l).is_some())
        .map(str::to_string)
        .collect();
    if !out.status.success() || list.is_empty() {
        return Err(KubernetesError::Version {
            program: kubeadm.display().to_string(),
            args: args.join(" "),
            why: format!(
                "no image list ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(list)
}

/// `--images DIR`: every `*.tar` in it, by component.
fn given(dir: &Path) -> Result<BTreeMap<String, (PathBuf, String)>, KubernetesError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| KubernetesError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    for file in files {
        let info = archives::inspect(&file)?;
        let name = info
            .names
            .first()
            .cloned()
            .ok_or_else(|| KubernetesError::ImageArchive {
                file: file.clone(),
                why: "the archive names no image (docker save RepoTags, or the OCI index's \
                  io.containerd.image.name annotation): save it with its full name"
                    .into(),
            })?;
        let component = release_component(split(&name).1).to_string();
        if let Some((other, _)) = out.insert(component.clone(), (file.clone(), name)) {
            return Err(KubernetesError::ImageArchive {
                file,
                why: format!(
                    "{} holds {component} too: give one of them",
                    other.display()
                ),
            });
        }
    }
    Ok(out)
}

/// The release tags its archives `<name>-amd64`.
fn release_component(name: &str) -> &str {
    name.strip_suffix("-amd64").unwrap_or(name)
}

pub(super) fn make(b: &Binaries, images: Option<&Path>) -> Result<ImagePlan, KubernetesError> {
    let mut given = match images {
        Some(dir) => given(dir)?,
        None => BTreeMap::new(),
    };
    let mut planned = Vec::new();
    for wanted in wanted(b)? {
        let (repo, component) = split(&wanted);
        let component = component.to_string();
        let group = if CONTROL_PLANE.contains(&component.as_str()) {
            Group::ControlPlane
        } else {
            Group::Node
        };
        let (name, from) = match given.remove(&component) {
            Some((file, named)) => from_given(&wanted, repo, &component, file, named)?,
            None => from_artifacts(b, &wanted, repo, &component)?,
        };
        planned.push(PlannedImage {
            component,
            name,
            wanted,
            group,
            from,
        });
    }
    // Images kubeadm does not run (a CNI plugin's, say) go to every node as they are named.
    for (component, (file, named)) in given {
        planned.push(PlannedImage {
            component,
            name: named.clone(),
            wanted: named.clone(),
            group: Group::Node,
            from: Provider::Archive { file, named },
        });
    }
    Ok(ImagePlan { images: planned })
}

/// etcd and pause may carry another tag (the rendered configuration names it);
/// kubeadm runs every other image at exactly the tag it asks for.
fn from_given(
    wanted: &str,
    repo: &str,
    component: &str,
    file: PathBuf,
    named: String,
) -> Result<(String, Provider), KubernetesError> {
    let tag = tag(&named).unwrap_or_default().to_string();
    if !matches!(component, "etcd" | "pause") && Some(tag.as_str()) != archives::tag(wanted) {
        return Err(KubernetesError::ImageArchive {
            file,
            why: format!(
                "it holds {named}, but this release's kubeadm runs {wanted}: give that one"
            ),
        });
    }
    Ok((format!("{repo}:{tag}"), Provider::Archive { file, named }))
}

fn from_artifacts(
    b: &Binaries,
    wanted: &str,
    repo: &str,
    component: &str,
) -> Result<(String, Provider), KubernetesError> {
    let archive = b.bin.join(format!("{component}.tar"));
    if b.layout == Layout::ServerRelease && archive.is_file() {
        let named = archives::inspect(&archive)?
            .names
            .first()
            .cloned()
            .unwrap_or_default();
        let tag = archives::tag(&named).unwrap_or_default();
        if Some(tag) != archives::tag(wanted) {
            return Err(KubernetesError::ImageArchive {
                file: archive,
                why: format!(
                    "it holds {named}, but the release's kubeadm runs {wanted}: the artifacts \
                     are not of one release"
                ),
            });
        }
        return Ok((
            wanted.into(),
            Provider::Archive {
                file: archive,
                named,
            },
        ));
    }
    let bin = |n: &str| Some(b.bin.join(n)).filter(|p| p.is_file());
    let built = match component {
        // The server release carries no etcd: this machine's (Debian's etcd-server) then.
        "etcd" => bin("etcd").or_else(|| b.local_etcd.clone()).map(|etcd| {
            let etcdctl = etcd.with_file_name("etcdctl");
            let version = super::version_of(&etcd, &["--version"], |t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("etcd Version:"))
                    .map(|v| v.trim().to_string())
            });
            // kubeadm's etcd tags carry a "-N" build suffix; ours is the first build.
            let etcdctl = Some(etcdctl).filter(|p| p.is_file());
            let files = [Some(etcd), etcdctl].into_iter().flatten().collect();
            version.map(|v| (format!("{repo}:{v}-0"), files))
        }),
        "pause" => bin("pause").map(|pause| {
            let version = super::version_of(&pause, &["-v"], |t| {
                t.trim().strip_prefix("pause.c v").map(str::to_string)
            });
            version.map(|v| (format!("{repo}:{v}"), vec![pause]))
        }),
        c if FROM_BINARIES.contains(&c) => bin(c).map(|p| Ok((wanted.to_string(), vec![p]))),
        _ => None,
    };
    match built.transpose()? {
        Some((name, files)) => Ok((name, Provider::Binaries { files })),
        None => Ok((wanted.into(), Provider::Missing)),
    }
}

impl ImagePlan {
    fn find(&self, component: &str) -> Option<&PlannedImage> {
        self.images.iter().find(|i| i.component == component)
    }

    fn present(&self, component: &str) -> Option<&PlannedImage> {
        self.find(component).filter(|i| i.from != Provider::Missing)
    }

    pub fn missing(&self) -> impl Iterator<Item = &PlannedImage> {
        self.images.iter().filter(|i| i.from == Provider::Missing)
    }

    /// What the image provides, for the agent's kubeadm configuration.
    pub fn node_image(&self, version: &str) -> NodeImage {
        let repository = self
            .find("kube-apiserver")
            .map(|i| {
                split(&i.wanted)
                    .0
                    .rsplit_once('/')
                    .map_or("", |(r, _)| r)
                    .to_string()
            })
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "registry.k8s.io".into());
        let tag_of = |c: &str| {
            self.present(c)
                .and_then(|i| tag(&i.name))
                .map(str::to_string)
        };
        NodeImage {
            kubernetes_version: Some(version.to_string()),
            // CoreDNS left out is an addon phase skipped, not an image pulled.
            offline: self.missing().all(|i| i.component == "coredns"),
            image_repository: repository,
            etcd_tag: tag_of("etcd"),
            pause_tag: tag_of("pause"),
            coredns: self.present("coredns").is_some(),
        }
    }

    /// The sandbox image containerd runs pods in: the one the image carries, else
    /// the one kubeadm asks for (then pulled).
    pub fn sandbox_image(&self) -> String {
        self.find("pause")
            .map(|i| i.name.clone())
            .unwrap_or_else(|| "registry.k8s.io/pause:3.9".into())
    }

    /// One line per image for people.
    pub fn report(&self) -> Vec<String> {
        self.images
            .iter()
            .map(|i| {
                let from = match &i.from {
                    Provider::Archive { file, named } if *named == i.name => {
                        format!("from {}", file.display())
                    }
                    Provider::Archive { file, named } => {
                        format!("from {} (renamed from {named})", file.display())
                    }
                    Provider::Binaries { files } => {
                        let names: Vec<String> =
                            files.iter().map(|f| f.display().to_string()).collect();
                        format!("built from {}", names.join(" and "))
                    }
                    Provider::Missing if i.component == "coredns" => {
                        "NOT IN THE IMAGE: kubeadm init \
                        skips its addon/coredns phase, so the cluster has no DNS until one is \
                        installed (give it in --images to include it)"
                            .into()
                    }
                    Provider::Missing => {
                        "NOT IN THE IMAGE: the kubelet pulls it at first boot, so \
                        this image is not air-gapped (give it in --images to include it)"
                            .into()
                    }
                };
                format!("image:   {:<13} {:<44} {from}", i.group.dir(), i.name)
            })
            .collect()
    }

    /// Write the archives into the image tree, the binaries to build into the
    /// stage, and `build.env` for the post-installation script.
    pub(super) fn stage(
        &self,
        root: &Path,
        copy: &dyn Fn(&Path, PathBuf) -> Result<(), KubernetesError>,
    ) -> Result<(), KubernetesError> {
        let stage = root.join(super::STAGE_DIR);
        std::fs::create_dir_all(&stage).map_err(|e| KubernetesError::io(&stage, e))?;
        let mut env = format!("SANDBOX_IMAGE={}\n", self.sandbox_image());
        for i in &self.images {
            match &i.from {
                Provider::Archive { file, .. } => {
                    let dir = root.join(super::IMAGES_DIR).join(i.group.dir());
                    std::fs::create_dir_all(&dir).map_err(|e| KubernetesError::io(&dir, e))?;
                    archives::retag(file, &dir.join(format!("{}.tar", i.component)), &i.name)?;
                }
                Provider::Binaries { files } => {
                    for f in files {
                        copy(f, stage.join(f.file_name().unwrap_or_default()))?;
                    }
                    let var = i.component.to_ascii_uppercase().replace('-', "_");
                    env.push_str(&format!("BUILD_{var}={}\n", i.name));
                }
                Provider::Missing => {}
            }
        }
        let path = stage.join("build.env");
        std::fs::write(&path, env).map_err(|e| KubernetesError::io(&path, e))
    }
}
