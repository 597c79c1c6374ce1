//! The GPT layout of a built disk image (`kubeboot.raw`): its partitions as
//! `sfdisk --json` lists them, found by their discoverable-partitions type.

use std::path::{Path, PathBuf};
use std::process::Command;

/// GPT partition type of an EFI system partition.
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT partition type of an x86-64 root partition (discoverable partitions spec).
pub const ROOT_X86_64_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// What went wrong reading a disk image's partition table.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("sfdisk: {0} (it is in util-linux)")]
    Sfdisk(#[source] std::io::Error),
    #[error("sfdisk --json {}: {stderr}", raw.display())]
    SfdiskFailed { raw: PathBuf, stderr: String },
    #[error("sfdisk --json {}: {why}", raw.display())]
    Table { raw: PathBuf, why: String },
    #[error(
        "{}: no {what} (is it a kubeboot disk image? build one with `kubeboot image build`)",
        raw.display()
    )]
    NoPartition { raw: PathBuf, what: &'static str },
}

/// One partition of a GPT disk image, as `sfdisk --json` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub type_guid: String,
    pub uuid: String,
    /// Offset in bytes from the start of the image.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

pub fn find<'a>(parts: &'a [Partition], type_guid: &str) -> Option<&'a Partition> {
    parts
        .iter()
        .find(|p| p.type_guid.eq_ignore_ascii_case(type_guid))
}

/// The partitions of a GPT image (`sfdisk --json`, util-linux).
pub fn partitions(raw: &Path) -> Result<Vec<Partition>, DiskError> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(raw)
        .output()
        .map_err(DiskError::Sfdisk)?;
    if !out.status.success() {
        return Err(DiskError::SfdiskFailed {
            raw: raw.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse_sfdisk_json(raw, &out.stdout)
}

fn parse_sfdisk_json(raw: &Path, json: &[u8]) -> Result<Vec<Partition>, DiskError> {
    let bad = |why: String| DiskError::Table {
        raw: raw.to_path_buf(),
        why,
    };
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let table = &v["partitiontable"];
    if table["label"] != "gpt" {
        return Err(bad(format!("not a GPT disk (label {})", table["label"])));
    }
    let sector = table["sectorsize"].as_u64().unwrap_or(512);
    let parts = table["partitions"]
        .as_array()
        .ok_or_else(|| bad("no partitions listed".into()))?;
    parts
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().map(str::to_string);
            let number = |k: &str| p[k].as_u64().map(|n| n * sector);
            let without = |k: &str| bad(format!("a partition without {k}"));
            Ok(Partition {
                type_guid: text("type").ok_or_else(|| without("type"))?,
                uuid: text("uuid").ok_or_else(|| without("uuid"))?,
                offset: number("start").ok_or_else(|| without("start"))?,
                size: number("size").ok_or_else(|| without("size"))?,
            })
        })
        .collect()
}

/// The partition of type `type_guid` (`what`, for the error) of a disk image.
pub fn find_in(
    raw: &Path,
    parts: &[Partition],
    type_guid: &str,
    what: &'static str,
) -> Result<Partition, DiskError> {
    find(parts, type_guid)
        .cloned()
        .ok_or_else(|| DiskError::NoPartition {
            raw: raw.to_path_buf(),
            what,
        })
}

/// The root partition of a kubeboot disk image.
pub fn root_partition(raw: &Path) -> Result<Partition, DiskError> {
    find_in(
        raw,
        &partitions(raw)?,
        ROOT_X86_64_TYPE,
        "x86-64 root partition",
    )
}

/// A small GPT image made the way systemd-repart makes kubeboot.raw, for tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;
    use std::process::Command;

    use super::{ESP_TYPE, ROOT_X86_64_TYPE};

    /// An 80 MiB GPT image at `raw` with fixed UUIDs: a FAT32 ESP (sfdisk,
    /// mkfs.vfat) and an ext4 root made from `tree` (`mkfs.ext4 -d`, times
    /// clamped to `epoch`). Needs util-linux, dosfstools and e2fsprogs
    /// (scripts/setup.sh).
    pub fn make_image(raw: &Path, tree: &Path, epoch: u64) {
        std::fs::File::create(raw)
            .unwrap()
            .set_len(80 << 20)
            .unwrap();
        let sh = format!(
            "set -e
printf 'label: gpt\\nlabel-id: 182E27A9-6E96-4AC8-877F-C2B097C71617\\n\
start=2048, size=65536, type={ESP_TYPE}, uuid=25864355-E82D-4788-9B35-3810276B2ED8\\n\
start=67584, size=94208, type={ROOT_X86_64_TYPE}, uuid=08708302-8809-4A3D-88E4-372806F6C7F1\\n' | sfdisk -q {raw}
mkfs.vfat -F 32 -n ESP -i 9B143FFD --offset 2048 {raw} 32768 >/dev/null
SOURCE_DATE_EPOCH={epoch} E2FSPROGS_FAKE_TIME={epoch} mkfs.ext4 -q -F -U 9771520f-9329-44ab-9e90-a736f9c4a090 -d {tree} -E offset={off} {raw} 47104k",
            raw = raw.display(),
            tree = tree.display(),
            off = 67584 * 512,
        );
        let out = Command::new("sh").arg("-c").arg(&sh).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfdisk_json_gives_byte_offsets() {
        let json = br#"{"partitiontable": {"label": "gpt", "id": "X", "device": "k.raw", "unit": "sectors",
          "firstlba": 2048, "lastlba": 8914950, "sectorsize": 512, "partitions": [
          {"node": "k.raw1", "start": 2048, "size": 524288, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "uuid": "25864355-E82D-4788-9B35-3810276B2ED8", "name": "esp"},
          {"node": "k.raw2", "start": 526336, "size": 8388608, "type": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "uuid": "08708302-8809-4A3D-88E4-372806F6C7F1", "name": "root-x86-64"}]}}"#;
        let raw = Path::new("k.raw");
        let p = parse_sfdisk_json(raw, json).unwrap();
        assert_eq!(find(&p, ROOT_X86_64_TYPE).unwrap().offset, 526_336 * 512);
        assert_eq!(find(&p, ROOT_X86_64_TYPE).unwrap().size, 8_388_608 * 512);
        assert_eq!(find(&p, ESP_TYPE).unwrap().offset, 1 << 20);
        let mbr = br#"{"partitiontable": {"label": "dos", "partitions": []}}"#;
        let e = parse_sfdisk_json(raw, mbr).unwrap_err().to_string();
        assert!(e.starts_with("sfdisk --json k.raw: not a GPT"), "{e}");
    }
}
