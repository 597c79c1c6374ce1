//! The last step of a reproducible disk image: the two values systemd-repart 254
//! leaves to chance when it makes the file systems of `kubeboot.raw`.
//!
//! Measured by comparing two builds from the same inputs byte for byte: with
//! everything else fixed (mkosi `Seed=`, `SOURCE_DATE_EPOCH`, e2fsprogs ≥ 1.47.2
//! clamping ext4 times, systemd-boot's random seed removed), only these differed:
//! - the ext4 root's directory-hash seed (`s_hash_seed` in every superblock copy),
//!   random per `mkfs.ext4`, which repart 254 gives no `-E hash_seed=`; `mkfs.ext4 -d`
//!   builds no hashed directory index, so setting the seed afterwards changes no
//!   directory (`e2fsck -fn` checks that here);
//! - the ESP's volume-label entry, which `mkfs.fat` stamps with the time of the
//!   build, not `SOURCE_DATE_EPOCH`.
//!
//! Both are set here from the image's own fixed values: the seed from the root
//! partition's UUID (itself fixed by `Seed=`), the label time from
//! `SOURCE_DATE_EPOCH`. Every node of one image shares the seed, as it shares the
//! rest of the file system; a node is not a multi-user machine where another local
//! user could exploit known directory hashes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::disk::{self, DiskError, ESP_TYPE, ROOT_X86_64_TYPE};

use sha2::{Digest, Sha256};

/// What kept a disk image from being made reproducible.
#[derive(Debug, thiserror::Error)]
pub enum ReproducibleError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{program}: {source}{hint}")]
    E2fsprogs {
        program: &'static str,
        /// What to do about it, when the program could not be started.
        hint: &'static str,
        source: std::io::Error,
    },
    #[error("{command} on the root partition of {}: {output}", raw.display())]
    Ext4 {
        command: String,
        raw: PathBuf,
        output: String,
    },
    #[error("{}: the ESP's volume label: {source}", raw.display())]
    EspLabel {
        raw: PathBuf,
        source: std::io::Error,
    },
}

/// Make `raw`'s two random values fixed (see the module documentation). Returns
/// what was done, one line each, for the build's output.
pub fn normalize_disk(
    raw: &Path,
    source_date_epoch: u64,
) -> Result<Vec<String>, ReproducibleError> {
    let parts = disk::partitions(raw)?;
    let mut done = Vec::new();
    let root = disk::find_in(raw, &parts, ROOT_X86_64_TYPE, "x86-64 root partition")?;
    let seed = hash_seed_for(&root.uuid);
    set_ext4_hash_seed(raw, root.offset, &seed, source_date_epoch)?;
    done.push(format!(
        "ext4 directory-hash seed {seed} (from the root partition's UUID)"
    ));
    let esp = disk::find_in(raw, &parts, ESP_TYPE, "EFI system partition")?;
    let (date, time) = dos_date_time(source_date_epoch);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(raw)
        .map_err(|source| ReproducibleError::Io {
            path: raw.to_path_buf(),
            source,
        })?;
    if set_fat_label_time(&mut file, esp.offset, date, time).map_err(|source| {
        ReproducibleError::EspLabel {
            raw: raw.to_path_buf(),
            source,
        }
    })? {
        done.push("ESP volume-label time set to SOURCE_DATE_EPOCH".into());
    }
    Ok(done)
}

/// A directory-hash seed that depends only on the partition's UUID: the first 16
/// bytes of SHA-256 over a label and the UUID, shaped as a version-4 UUID.
pub fn hash_seed_for(partition_uuid: &str) -> String {
    let digest = Sha256::digest(
        format!(
            "kubeboot ext4 directory-hash seed {}",
            partition_uuid.to_ascii_lowercase()
        )
        .as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Write the seed into every superblock copy with debugfs (`close_filesys -a`
/// writes the backups too, which plain `ssv` leaves as they were; checksums are
/// updated), then check the file system with `e2fsck -fn`. debugfs stamps each
/// copy's last-write time: E2FSPROGS_FAKE_TIME makes that `SOURCE_DATE_EPOCH`
/// (measured: without it two builds differed in `s_wtime` of every copy).
fn set_ext4_hash_seed(
    raw: &Path,
    offset: u64,
    seed: &str,
    epoch: u64,
) -> Result<(), ReproducibleError> {
    let device = format!("{}?offset={offset}", raw.display());
    let commands = format!("ssv hash_seed {seed}\nclose_filesys -a\n");
    let run =
        |program: &'static str, args: &[&str], input: &str| -> Result<(), ReproducibleError> {
            let failed = |hint: &'static str| {
                move |source| ReproducibleError::E2fsprogs {
                    program,
                    hint,
                    source,
                }
            };
            let mut child = Command::new(program)
                .args(args)
                .arg(&device)
                .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(failed(" (it is in e2fsprogs)"))?;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(input.as_bytes())
                .map_err(failed(""))?;
            let out = child.wait_with_output().map_err(failed(""))?;
            check_e2fsprogs(raw, program, args, &out)
        };
    run("debugfs", &["-w", "-f", "-"], &commands)?;
    run("e2fsck", &["-fn"], "")
}

/// Whether debugfs or e2fsck did its work on the root partition of `raw`.
fn check_e2fsprogs(
    raw: &Path,
    program: &str,
    args: &[&str],
    out: &std::process::Output,
) -> Result<(), ReproducibleError> {
    // debugfs -f reports a failed command on stderr and still exits 0.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = stderr
        .lines()
        .any(|l| !l.starts_with("debugfs ") && !l.starts_with("e2fsck ") && !l.trim().is_empty());
    if out.status.success() && !(program == "debugfs" && failed) {
        return Ok(());
    }
    Err(ReproducibleError::Ext4 {
        command: format!("{program} {}", args.join(" ")),
        raw: raw.to_path_buf(),
        output: format!(
            "{} {}",
            String::from_utf8_lossy(&out.stdout).trim(),
            stderr.trim()
        ),
    })
}

/// DOS date and time (UTC, two-second resolution) of a Unix time; FAT's range
/// starts in 1980, so earlier times give 1980-01-01 00:00.
pub fn dos_date_time(unix: u64) -> (u16, u16) {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    if y < 1980 {
        return ((1 << 5) | 1, 0);
    }
    let date = (((y - 1980) as u16) << 9) | ((m as u16) << 5) | d as u16;
    let time = (((secs / 3600) as u16) << 11)
        | ((((secs % 3600) / 60) as u16) << 5)
        | ((secs % 60) / 2) as u16;
    (date, time)
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Set the creation, access and modification stamps of the volume-label entry in
/// the root directory of the FAT32 file system at `offset`. Returns false when the
/// root directory's first cluster holds no label entry; `InvalidData` when
/// `offset` holds no FAT32 file system.
pub fn set_fat_label_time<F: Read + Write + Seek>(
    disk: &mut F,
    offset: u64,
    date: u16,
    time: u16,
) -> std::io::Result<bool> {
    let mut boot = [0u8; 512];
    disk.seek(SeekFrom::Start(offset))?;
    disk.read_exact(&mut boot)?;
    if &boot[82..90] != b"FAT32   " || boot[510..512] != [0x55, 0xaa] {
        return Err(invalid("not a FAT32 file system"));
    }
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([boot[i], boot[i + 1]]));
    let u32_at = |i: usize| {
        u64::from(u32::from_le_bytes([
            boot[i],
            boot[i + 1],
            boot[i + 2],
            boot[i + 3],
        ]))
    };
    let bytes_per_sector = u16_at(11);
    let sectors_per_cluster = u64::from(boot[13]);
    let reserved = u16_at(14);
    let fats = u64::from(boot[16]);
    let fat_sectors = u32_at(36);
    let root_cluster = u32_at(44);
    if bytes_per_sector == 0 || sectors_per_cluster == 0 || root_cluster < 2 {
        return Err(invalid("a boot sector with impossible geometry"));
    }
    let first_data = reserved + fats * fat_sectors;
    let root = offset + (first_data + (root_cluster - 2) * sectors_per_cluster) * bytes_per_sector;
    let mut cluster = vec![0u8; (bytes_per_sector * sectors_per_cluster) as usize];
    disk.seek(SeekFrom::Start(root))?;
    disk.read_exact(&mut cluster)?;
    for (i, entry) in cluster.chunks_exact_mut(32).enumerate() {
        match entry[0] {
            0x00 => break,    // end of directory
            0xe5 => continue, // deleted
            _ => {}
        }
        // A volume label: attribute 0x08 alone (0x0f marks a long-name entry).
        if entry[11] & 0x3f != 0x08 {
            continue;
        }
        entry[13] = 0; // creation time, tenths of seconds
        entry[14..16].copy_from_slice(&time.to_le_bytes());
        entry[16..18].copy_from_slice(&date.to_le_bytes());
        entry[18..20].copy_from_slice(&date.to_le_bytes()); // last access date
        entry[22..24].copy_from_slice(&time.to_le_bytes());
        entry[24..26].copy_from_slice(&date.to_le_bytes());
        disk.seek(SeekFrom::Start(root + (i as u64) * 32))?;
        disk.write_all(entry)?;
        return Ok(true);
    }
    Ok(false)
}

fn invalid(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_match_known_dates() {
        // 2026-11-30 02:12:38 UTC: the label stamp of a real build (0x5d7e, 0x1193).
        assert_eq!(dos_date_time(1_796_004_758), (0x5d7e, 0x1193));
        // 1980-01-01 00:00:00, FAT's first second, and a time before it.
        assert_eq!(dos_date_time(315_532_800), (0x0021, 0));
        assert_eq!(dos_date_time(0), (0x0021, 0));
        // 2000-02-29 23:59:59 (leap day; odd seconds round down).
        assert_eq!(
            dos_date_time(951_868_799),
            ((20 << 9) | (2 << 5) | 29, (23 << 11) | (59 << 5) | 29)
        );
    }

    #[test]
    fn the_seed_depends_on_the_uuid_only_and_is_a_uuid() {
        let a = hash_seed_for("08708302-8809-4A3D-88E4-372806F6C7F1");
        assert_eq!(a, hash_seed_for("08708302-8809-4a3d-88e4-372806f6c7f1"));
        assert_ne!(a, hash_seed_for("08708302-8809-4a3d-88e4-372806f6c7f2"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    /// A small GPT image made the way repart makes kubeboot.raw (sfdisk, mkfs.fat,
    /// mkfs.ext4 -d), twice: after normalize_disk both are the same bytes, and the
    /// label's stamp is the epoch's. Needs util-linux, dosfstools and e2fsprogs
    /// (scripts/setup.sh).
    #[test]
    fn two_file_systems_made_apart_become_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hostname"), "node\n").unwrap();
        let epoch = 1_796_004_758;
        let make = |name: &str| {
            let raw = dir.path().join(name);
            crate::disk::test_support::make_image(&raw, &tree, epoch);
            raw
        };
        let (a, b) = (make("a.raw"), make("b.raw"));
        // mkfs.ext4 picks a random directory-hash seed each time.
        assert!(
            std::fs::read(&a).unwrap() != std::fs::read(&b).unwrap(),
            "made apart, they differ first"
        );
        for raw in [&a, &b] {
            let done = normalize_disk(raw, epoch).unwrap();
            assert_eq!(done.len(), 2, "{done:?}");
            // Apart by more than a second: a write time taken from the clock would differ.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "normalized, they are the same bytes"
        );
        // The label entry now carries the epoch's stamp.
        let mut f = std::fs::File::open(&a).unwrap();
        let (date, time) = dos_date_time(epoch);
        let bytes = {
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            v
        };
        let label = bytes
            .windows(12)
            .position(|w| &w[..11] == b"ESP        " && w[11] == 0x08)
            .expect("a label entry");
        assert_eq!(
            &bytes[label + 22..label + 26],
            [time.to_le_bytes(), date.to_le_bytes()].concat()
        );
    }
}
