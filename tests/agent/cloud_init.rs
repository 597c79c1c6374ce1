//! The user-data kubeboot makes and ships, checked with real cloud-init
//! (Debian's package: its schema checker and its NoCloud seed reader) and
//! read back the way the agent reads it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-init/examples/user-data")
}

fn cloud_init_schema(file: &Path) -> std::process::Output {
    Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(file)
        .output()
        .expect("cloud-init is installed by scripts/setup.sh")
}

/// `kubeboot agent --dry-run` on a node whose user-data is `user_data`, delivered on `path`.
fn agent_reads(path: &str, content: &str) -> serde_json::Value {
    let node = TestNode::new(WORKER);
    write(&node.path(path), content);
    let out = node
        .kubeboot(&["agent", "--dry-run", "--output", "json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_example_is_read_by_the_agent() {
    let mut seen = 0;
    for entry in fs::read_dir(examples()).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let content = fs::read_to_string(&p).unwrap();
        if name.ends_with("-write-files.yaml") {
            let ok = cloud_init_schema(&p);
            assert!(ok.status.success(), "{name}: {}", text(&ok));
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&content).unwrap();
            let f = &v["write_files"][0];
            assert_eq!(f["path"].as_str(), Some("/etc/kubeboot/node.toml"));
            assert_eq!(f["permissions"].as_str(), Some("0600"));
            let plan = agent_reads("/etc/kubeboot/node.toml", f["content"].as_str().unwrap());
            assert_eq!(
                plan["document_origin"], "file /etc/kubeboot/node.toml",
                "{name}"
            );
            assert_eq!(plan["role"], name.trim_end_matches("-write-files.yaml"));
        } else if name.ends_with("-pointer.toml") {
            let doc = kubeboot_core::document::user_data::kubeboot_document_in_user_data(&content)
                .expect(&name);
            let parsed = kubeboot_core::document::parse(&doc).unwrap();
            assert!(parsed.source.unwrap().url.starts_with("https://"));
        } else {
            let plan = agent_reads("/var/lib/cloud/instance/user-data.txt", &content);
            assert!(
                plan["document_origin"]
                    .as_str()
                    .unwrap()
                    .contains("user-data"),
                "{name}"
            );
            assert_eq!(plan["role"], "worker", "{name}");
        }
        seen += 1;
    }
    assert_eq!(seen, 6);
}

#[test]
fn cloud_init_schema_can_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    fs::write(&bad, "#cloud-config\nwrite_files:\n- path: /etc/kubeboot/node.toml\n  permissions: 600\n  encoding: rot13\n").unwrap();
    assert!(
        !cloud_init_schema(&bad).status.success(),
        "cloud-init accepted an invalid cloud-config"
    );
}

#[test]
fn userdata_formats_are_read_back() {
    let doc =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-init/examples/control-plane.toml");
    let render = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
            .args([
                "userdata",
                "--format",
                format,
                "--document",
                doc.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        String::from_utf8(out.stdout).unwrap()
    };
    let mime = render("mime");
    assert_eq!(
        agent_reads("/var/lib/cloud/instance/user-data.txt", &mime)["role"],
        "control-plane"
    );
    let tmp = tempfile::tempdir().unwrap();
    let cc = tmp.path().join("cc.yaml");
    fs::write(&cc, render("cloud-config")).unwrap();
    let ok = cloud_init_schema(&cc);
    assert!(ok.status.success(), "{}", text(&ok));
}

#[test]
fn seed_iso_is_labelled_cidata_and_read_by_cloud_init() {
    let tmp = tempfile::tempdir().unwrap();
    let iso = tmp.path().join("seed.iso");
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-init/examples/worker.toml");
    let net = tmp.path().join("network-config");
    fs::write(&net, "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args([
            "seed",
            "--instance-id",
            "i-42",
            "--hostname",
            "worker-42",
            "--document",
        ])
        .arg(&doc)
        .arg("--network-config")
        .arg(&net)
        .arg("--out")
        .arg(&iso)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&iso).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o600);
    let pvd = Command::new("xorriso")
        .args(["-indev"])
        .arg(&iso)
        .arg("-pvd_info")
        .output()
        .unwrap();
    assert!(
        text(&pvd).contains("Volume Id    : cidata"),
        "{}",
        text(&pvd)
    );
    let dir = tmp.path().join("x");
    let ex = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(ex.status.success(), "{}", text(&ex));
    // cloud-init's own NoCloud seed reader (Debian's python3 with the cloud-init package).
    let script = format!(
        "from cloudinit import util\nmd, ud, vd = util.read_seeded('file://{}/')\nprint(md['instance-id'], md['local-hostname'])\nimport sys; sys.stdout.write(ud.decode() if isinstance(ud, bytes) else ud)",
        dir.display()
    );
    let py = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py));
    let printed = String::from_utf8(py.stdout).unwrap();
    assert!(
        printed.starts_with("i-42 worker-42\n#cloud-config\n"),
        "{printed}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("network-config")).unwrap(),
        fs::read_to_string(&net).unwrap()
    );
    let ok = cloud_init_schema(&dir.join("user-data"));
    assert!(ok.status.success(), "{}", text(&ok));

    // A bad document makes no ISO.
    let bad_doc = tmp.path().join("bad.toml");
    fs::write(&bad_doc, "version = 1\nrole = \"worker\"\n").unwrap();
    let iso2 = tmp.path().join("none.iso");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot-under-test"))
        .args(["seed", "--document"])
        .arg(&bad_doc)
        .arg("--out")
        .arg(&iso2)
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(!iso2.exists());
}

fn worker_document() -> String {
    fs::read_to_string(examples().join("../worker.toml")).unwrap()
}

/// A vfat NoCloud seed labelled CIDATA, made the way cloud-init's docs show
/// (mkfs.vfat, mcopy), holding `user_data`.
fn vfat_seed(dir: &Path, user_data: &str) -> PathBuf {
    let img = dir.join("seed.vfat");
    fs::write(dir.join("user-data"), user_data).unwrap();
    let mk = Command::new("mkfs.vfat")
        .args(["-n", "CIDATA", "-C"])
        .arg(&img)
        .arg("2048")
        .output()
        .expect("mkfs.vfat (dosfstools) is installed by scripts/setup.sh");
    assert!(mk.status.success(), "{}", text(&mk));
    let cp = Command::new("mcopy")
        .arg("-i")
        .arg(&img)
        .arg(dir.join("user-data"))
        .arg("::user-data")
        .output()
        .expect("mcopy (mtools) is installed by scripts/setup.sh");
    assert!(cp.status.success(), "{}", text(&cp));
    img
}

/// The user-data file of a seed, read back with the seed format's own tools
/// (xorriso for ISO 9660, mtools for vfat): this machine's kernel mounts neither,
/// so the mount the agent does is tested in the VMs (tests/e2e/run, NoCloud).
fn user_data_of(seed: &Path, out: &Path) -> String {
    seed_file(seed, "user-data", out)
}

/// The file `name` at the root of a seed, read back as `user_data_of` does.
fn seed_file(seed: &Path, name: &str, out: &Path) -> String {
    let _ = fs::remove_file(out);
    let read = if seed.extension().is_some_and(|e| e == "iso") {
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(seed)
            .arg("-extract")
            .arg(format!("/{name}"))
            .arg(out)
            .output()
    } else {
        Command::new("mcopy")
            .arg("-i")
            .arg(seed)
            .arg(format!("::{name}"))
            .arg(out)
            .output()
    }
    .unwrap();
    assert!(read.status.success(), "{}", text(&read));
    fs::read_to_string(out).unwrap()
}

/// The agent's own NoCloud reader finds the document in every user-data form
/// kubeboot writes, on real seeds: ISO 9660 made by `kubeboot seed`'s writer
/// (xorriso, label cidata) and vfat (label CIDATA).
#[test]
fn the_agent_reads_the_document_on_real_seeds() {
    let doc = worker_document();
    let tmp = tempfile::tempdir().unwrap();
    let forms = [
        (
            "cloud-config",
            kubeboot_serve::userdata::cloud_config(&doc),
            "user-data write_files",
        ),
        ("mime", kubeboot_serve::userdata::mime(&doc), "user-data"),
        ("toml", doc.clone(), "user-data"),
    ];
    let out = tmp.path().join("read-back");
    for (name, user_data, how) in &forms {
        let iso = tmp.path().join(format!("{name}.iso"));
        kubeboot_serve::userdata::write_seed(user_data, "instance-id: i-1\n", None, &iso).unwrap();
        let found = kubeboot_agent::source::document_in_seed(&user_data_of(&iso, &out));
        assert_eq!(found, Some((doc.clone(), *how)), "{name}");
    }
    let vfat_dir = tmp.path().join("vfat");
    fs::create_dir(&vfat_dir).unwrap();
    let vfat = vfat_seed(&vfat_dir, &kubeboot_serve::userdata::cloud_config(&doc));
    let found = kubeboot_agent::source::document_in_seed(&user_data_of(&vfat, &out));
    assert_eq!(found, Some((doc.clone(), "user-data write_files")));
    // cloud-init's own user-data (no kubeboot document) is left to cloud-init.
    assert_eq!(
        kubeboot_agent::source::document_in_seed("#cloud-config\npackages: [curl]\n"),
        None
    );
}

/// The machine's name on a seed: meta-data as `kubeboot seed` writes it, read back
/// from a real ISO, gives the agent its `local-hostname`; JSON meta-data (which
/// cloud-init reads too) as well; a name that is no DNS name is not used.
#[test]
fn the_agent_reads_the_hostname_in_meta_data() {
    let tmp = tempfile::tempdir().unwrap();
    let iso = tmp.path().join("seed.iso");
    let meta = kubeboot_serve::userdata::meta_data("i-7", Some("Worker-7"));
    kubeboot_serve::userdata::write_seed(&worker_document(), &meta, None, &iso).unwrap();
    let meta_back = seed_file(&iso, "meta-data", &tmp.path().join("meta-data"));
    use kubeboot_agent::source::local_hostname;
    assert_eq!(local_hostname(&meta_back).as_deref(), Some("worker-7"));
    assert_eq!(
        local_hostname(r#"{"instance-id": "i-8", "local-hostname": "cp2"}"#).as_deref(),
        Some("cp2")
    );
    for no_name in [
        "instance-id: i-9\n",
        "instance-id: i-9\nlocal-hostname: bad_name\n",
        "instance-id: i-9\nlocal-hostname: -dash\n",
        "not: [yaml\n",
    ] {
        assert_eq!(local_hostname(no_name), None, "{no_name}");
    }
}

/// On the running system the agent finds seeds by their label with blkid: seed
/// images attached to real loop devices (ISO labelled cidata, vfat labelled
/// CIDATA) are both found, and a loop device without the label is not.
#[test]
fn the_agent_finds_seeds_by_their_label() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it attaches loop devices"
    );
    let tmp = tempfile::tempdir().unwrap();
    let iso = tmp.path().join("seed.iso");
    kubeboot_serve::userdata::write_seed(&worker_document(), "instance-id: i-3\n", None, &iso)
        .unwrap();
    let vfat = vfat_seed(tmp.path(), "#cloud-config\n");
    let plain = tmp.path().join("plain.img");
    fs::write(&plain, vec![0u8; 1 << 20]).unwrap();
    struct Loop(String);
    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let attach = |file: &Path| {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    };
    let (iso_dev, vfat_dev, plain_dev) = (attach(&iso), attach(&vfat), attach(&plain));
    let found = kubeboot_agent::source::seed_devices(&kubeboot_core::host::Host::system());
    for (dev, expected) in [(&iso_dev, true), (&vfat_dev, true), (&plain_dev, false)] {
        assert_eq!(
            found.contains(&PathBuf::from(&dev.0)),
            expected,
            "{} in {found:?}",
            dev.0
        );
    }
}
