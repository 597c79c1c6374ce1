//! Container image archives given to the image build: `docker save` archives
//! (`manifest.json` with `RepoTags`, as the Kubernetes server release ships its
//! control-plane images) and OCI image-layout archives (`index.json`). Both are
//! what `ctr images import` reads; the name containerd gives the image comes from
//! `RepoTags` or from the index's `io.containerd.image.name` annotation.
//!
//! The release tags its archives `registry.k8s.io/<name>-amd64:<tag>` while kubeadm
//! asks for `registry.k8s.io/<name>:<tag>`, so an archive is rewritten under the
//! name kubeadm asks for: the same entries in the same order with the same headers,
//! only the naming files changed. The same input gives the same bytes.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::KubernetesError;

/// The two archive formats `ctr images import` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerSave,
    OciLayout,
}

/// What an archive says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub format: Format,
    /// The full references it carries (`host/path:tag`), in order.
    pub names: Vec<String>,
}

const OCI_NAME: &str = "io.containerd.image.name";
const OCI_REF: &str = "org.opencontainers.image.ref.name";

fn bad(path: &Path, why: impl Into<String>) -> KubernetesError {
    KubernetesError::ImageArchive {
        file: path.to_path_buf(),
        why: why.into(),
    }
}

/// Read an archive's format and names without unpacking it.
pub fn inspect(path: &Path) -> Result<ArchiveInfo, KubernetesError> {
    let mut manifest = None;
    let mut index = None;
    each_entry(path, |name, entry| {
        match name {
            "manifest.json" => manifest = Some(read_json(path, name, entry)?),
            "index.json" => index = Some(read_json(path, name, entry)?),
            _ => {}
        }
        Ok(())
    })?;
    if let Some(m) = manifest {
        let names = docker_names(&m).ok_or_else(|| {
            bad(
                path,
                "manifest.json is not a docker save manifest (a list with RepoTags)",
            )
        })?;
        return Ok(ArchiveInfo {
            format: Format::DockerSave,
            names,
        });
    }
    if let Some(i) = index {
        return Ok(ArchiveInfo {
            format: Format::OciLayout,
            names: oci_names(&i),
        });
    }
    Err(bad(
        path,
        "neither manifest.json (docker save) nor index.json (OCI image layout) in it",
    ))
}

fn each_entry(
    path: &Path,
    mut f: impl FnMut(&str, &mut dyn Read) -> Result<(), KubernetesError>,
) -> Result<(), KubernetesError> {
    let file = std::fs::File::open(path).map_err(|e| KubernetesError::io(path, e))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .map_err(|e| bad(path, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(path, format!("damaged tar archive: {e}")))?;
        let name = entry_name(&entry);
        f(&name, &mut entry)?;
    }
    Ok(())
}

fn entry_name<R: Read>(entry: &tar::Entry<R>) -> String {
    let p = entry.path().map(|p| p.to_string_lossy().into_owned());
    p.unwrap_or_default().trim_start_matches("./").to_string()
}

fn read_json(path: &Path, name: &str, r: &mut dyn Read) -> Result<Value, KubernetesError> {
    let mut text = Vec::new();
    r.read_to_end(&mut text)
        .map_err(|e| bad(path, format!("{name}: {e}")))?;
    serde_json::from_slice(&text).map_err(|e| bad(path, format!("{name}: {e}")))
}

fn docker_names(manifest: &Value) -> Option<Vec<String>> {
    let list = manifest.as_array()?;
    let mut names = Vec::new();
    for image in list {
        for tag in image.get("RepoTags")?.as_array()? {
            names.push(tag.as_str()?.to_string());
        }
    }
    Some(names)
}

fn oci_names(index: &Value) -> Vec<String> {
    let manifests = index.get("manifests").and_then(Value::as_array);
    manifests
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let a = m.get("annotations")?;
            let full = a.get(OCI_NAME).and_then(Value::as_str);
            // ref.name is often only a tag; only a full reference names an image.
            let reference = a
                .get(OCI_REF)
                .and_then(Value::as_str)
                .filter(|r| r.contains('/') && r.contains(':'));
            full.or(reference).map(str::to_string)
        })
        .collect()
}

/// The repository of a reference without its tag (`registry.k8s.io/pause:3.9` →
/// `registry.k8s.io/pause`), and its last path component (`pause`).
pub fn split(reference: &str) -> (&str, &str) {
    let repo = reference
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(reference, |(r, _)| r);
    (repo, repo.rsplit('/').next().unwrap_or(repo))
}

/// The tag of a reference (`registry.k8s.io/pause:3.9` → `3.9`).
pub fn tag(reference: &str) -> Option<&str> {
    reference
        .rsplit_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'))
}

/// Write `src` to `dst` named `name` (and only that): the entries as they are,
/// but `manifest.json`/`repositories` (docker save) or `index.json` (OCI) name it.
/// Refuses an archive of more than one image.
pub fn retag(src: &Path, dst: &Path, name: &str) -> Result<(), KubernetesError> {
    let info = inspect(src)?;
    let file = std::fs::File::open(src).map_err(|e| KubernetesError::io(src, e))?;
    let tmp = dst.with_extension("tar.partial");
    let out = std::fs::File::create(&tmp).map_err(|e| KubernetesError::io(&tmp, e))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .map_err(|e| bad(src, format!("not a tar archive: {e}")))?;
    let write_err = |e: std::io::Error| KubernetesError::io(&tmp, e);
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(src, format!("damaged tar archive: {e}")))?;
        let entry_path = entry_name(&entry);
        let mut header = entry.header().clone();
        let renamed = match (info.format, entry_path.as_str()) {
            (Format::DockerSave, "manifest.json") => Some(docker_manifest(
                src,
                read_json(src, &entry_path, &mut entry)?,
                name,
            )?),
            (Format::DockerSave, "repositories") => Some(docker_repositories(
                read_json(src, &entry_path, &mut entry)?,
                name,
            )),
            (Format::OciLayout, "index.json") => Some(oci_index(
                src,
                read_json(src, &entry_path, &mut entry)?,
                name,
            )?),
            _ => None,
        };
        let raw_path = entry.path_bytes().into_owned();
        let raw_path = String::from_utf8_lossy(&raw_path).into_owned();
        match renamed {
            Some(json) => {
                let bytes = serde_json::to_vec(&json).expect("serializes");
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, &raw_path, bytes.as_slice())
                    .map_err(write_err)?;
            }
            None if header.entry_type().is_file() => builder
                .append_data(&mut header, &raw_path, &mut entry)
                .map_err(write_err)?,
            None => {
                let link = entry.link_name().map_err(|e| bad(src, e.to_string()))?;
                match link {
                    Some(target) => builder
                        .append_link(&mut header, &raw_path, target)
                        .map_err(write_err)?,
                    None => builder
                        .append_data(&mut header, &raw_path, std::io::empty())
                        .map_err(write_err)?,
                }
            }
        }
    }
    let out = builder.into_inner().map_err(write_err)?;
    out.into_inner()
        .map_err(|e| write_err(e.into_error()))?
        .sync_all()
        .map_err(write_err)?;
    std::fs::rename(&tmp, dst).map_err(|e| KubernetesError::io(dst, e))
}

fn one_image(src: &Path, n: usize) -> Result<(), KubernetesError> {
    if n != 1 {
        return Err(bad(
            src,
            format!("it holds {n} images; give one image per archive"),
        ));
    }
    Ok(())
}

fn docker_manifest(src: &Path, mut m: Value, name: &str) -> Result<Value, KubernetesError> {
    let list = m
        .as_array_mut()
        .ok_or_else(|| bad(src, "manifest.json is not a list"))?;
    one_image(src, list.len())?;
    list[0]["RepoTags"] = serde_json::json!([name]);
    Ok(m)
}

fn docker_repositories(old: Value, name: &str) -> Value {
    // {"repo": {"tag": "<top layer id>"}}: keep the layer id, under the new name.
    let id = old
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_object)
        .and_then(|t| t.values().next())
        .cloned()
        .unwrap_or(Value::Null);
    let (repo, _) = split(name);
    let tag = tag(name).unwrap_or("latest");
    serde_json::json!({ repo: { tag: id } })
}

fn oci_index(src: &Path, mut index: Value, name: &str) -> Result<Value, KubernetesError> {
    let list = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad(src, "index.json has no manifests"))?;
    one_image(src, list.len())?;
    let annotations = list[0]
        .as_object_mut()
        .ok_or_else(|| bad(src, "index.json: a manifest that is not an object"))?
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    annotations[OCI_NAME] = name.into();
    annotations[OCI_REF] = name.into();
    Ok(index)
}

#[cfg(any(test, feature = "test-support"))]
pub(crate) mod test_support {
    use std::path::Path;

    /// A `docker save` archive of one tiny image, as the release's are laid out.
    pub fn docker_save(path: &Path, name: &str) {
        let layer = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o755);
            b.append_data(&mut h, "usr/local/bin/x", &b"hello"[..])
                .unwrap();
            b.into_inner().unwrap()
        };
        let diff_id = {
            use sha2::Digest;
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)))
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Entrypoint": ["/usr/local/bin/x"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        }))
        .unwrap();
        let (repo, _) = super::split(name);
        let tag = super::tag(name).unwrap();
        let files: Vec<(String, Vec<u8>)> = vec![
            ("abc/layer.tar".into(), layer),
            ("abc/VERSION".into(), b"1.0".to_vec()),
            ("cfg.json".into(), config),
            (
                "manifest.json".into(),
                serde_json::to_vec(&serde_json::json!([{
                    "Config": "cfg.json", "RepoTags": [name], "Layers": ["abc/layer.tar"]
                }]))
                .unwrap(),
            ),
            (
                "repositories".into(),
                serde_json::to_vec(&serde_json::json!({ repo: { tag: "abc" } })).unwrap(),
            ),
        ];
        let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
        for (p, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, p, data.as_slice()).unwrap();
        }
        b.finish().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_repository_component_and_tag() {
        assert_eq!(
            split("registry.k8s.io/coredns/coredns:v1.10.1"),
            ("registry.k8s.io/coredns/coredns", "coredns")
        );
        assert_eq!(
            split("localhost:5000/pause"),
            ("localhost:5000/pause", "pause")
        );
        assert_eq!(tag("registry.k8s.io/pause:3.9"), Some("3.9"));
        assert_eq!(tag("localhost:5000/pause"), None);
    }

    #[test]
    fn a_release_archive_is_renamed_for_kubeadm_and_nothing_else_changes() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("kube-apiserver.tar");
        test_support::docker_save(&src, "registry.k8s.io/kube-apiserver-amd64:v1.28.7");
        let info = inspect(&src).unwrap();
        assert_eq!(info.format, Format::DockerSave);
        assert_eq!(info.names, ["registry.k8s.io/kube-apiserver-amd64:v1.28.7"]);

        let dst = d.path().join("out.tar");
        retag(&src, &dst, "registry.k8s.io/kube-apiserver:v1.28.7").unwrap();
        assert_eq!(
            inspect(&dst).unwrap().names,
            ["registry.k8s.io/kube-apiserver:v1.28.7"]
        );
        let list = |p: &Path| {
            let mut out = Vec::new();
            each_entry(p, |name, r| {
                let mut data = Vec::new();
                r.read_to_end(&mut data).unwrap();
                out.push((name.to_string(), data));
                Ok(())
            })
            .unwrap();
            out
        };
        let (a, b) = (list(&src), list(&dst));
        assert_eq!(a.len(), b.len());
        for ((na, da), (nb, db)) in a.iter().zip(&b) {
            assert_eq!(na, nb, "same order");
            if na == "repositories" {
                let v: Value = serde_json::from_slice(db).unwrap();
                assert_eq!(v["registry.k8s.io/kube-apiserver"]["v1.28.7"], "abc");
            } else if na != "manifest.json" {
                assert_eq!(da, db, "{na} unchanged");
            }
        }
        // The same input gives the same bytes.
        let again = d.path().join("again.tar");
        retag(&src, &again, "registry.k8s.io/kube-apiserver:v1.28.7").unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&again).unwrap());
    }

    #[test]
    fn an_oci_archive_gets_containerds_name_annotation() {
        let d = tempfile::tempdir().unwrap();
        let spec = crate::oci::ImageSpec {
            name: "registry.k8s.io/pause:3.9".into(),
            files: vec![(d.path().join("pause"), "/pause".into())],
            mtime: 1,
            ..Default::default()
        };
        std::fs::write(d.path().join("pause"), b"#!/bin/sh\n").unwrap();
        let src = d.path().join("pause.tar");
        crate::oci::write_archive(&spec, &src).unwrap();
        assert_eq!(inspect(&src).unwrap().format, Format::OciLayout);
        let dst = d.path().join("renamed.tar");
        retag(&src, &dst, "example.org/pause:3.9").unwrap();
        assert_eq!(inspect(&dst).unwrap().names, ["example.org/pause:3.9"]);
    }

    #[test]
    fn what_is_not_an_image_archive_is_refused_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.tar");
        std::fs::write(&p, b"not a tar").unwrap();
        let e = inspect(&p).unwrap_err().to_string();
        assert!(e.contains("x.tar"), "{e}");
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, "README", &b"x"[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        let e = inspect(&p).unwrap_err().to_string();
        assert!(e.contains("neither manifest.json"), "{e}");
    }
}
