//! The fingerprint of an ASCII-armored OpenPGP public key, to check a signing
//! key the image build fetches against the one kept in this repository.
//!
//! A v4 fingerprint (RFC 4880 §12.2) is SHA-1 over 0x99, the primary key
//! packet's body length (two bytes, big-endian) and that body. It stays the
//! same when the key is re-signed with a new expiry, which the file's hash
//! does not.

use base64::Engine;
use sha1::{Digest, Sha1};

/// The largest key file accepted, in bytes (armored keys with many
/// signatures are tens of KiB).
pub const MAX_KEY_BYTES: usize = 256 * 1024;

/// Why a file is not a usable OpenPGP public key.
#[derive(Debug, thiserror::Error)]
pub enum OpenPgpError {
    #[error("the key file is over {} bytes", MAX_KEY_BYTES)]
    TooLarge,
    #[error("the key file is not ASCII armor")]
    NotArmor,
    #[error("no -----BEGIN PGP PUBLIC KEY BLOCK----- line")]
    NoKeyBlock,
    #[error("the armored key is not base64: {0}")]
    Base64(#[source] base64::DecodeError),
    #[error("the key data ends inside its first packet")]
    Truncated,
    #[error("not an OpenPGP packet")]
    NotPacket,
    #[error("{0} packet lengths are not used by public keys")]
    PacketLength(&'static str),
    #[error("the first packet is of type {0}, not a public key (6)")]
    NotPublicKey(u8),
    #[error("not a version 4 public key")]
    NotVersion4,
    #[error("public key packet too long")]
    TooLong,
}

/// The v4 fingerprint of the primary key, 40 upper-case hex digits.
pub fn primary_fingerprint(armored: &[u8]) -> Result<String, OpenPgpError> {
    if armored.len() > MAX_KEY_BYTES {
        return Err(OpenPgpError::TooLarge);
    }
    let packets = dearmor(armored)?;
    let (tag, body) = first_packet(&packets)?;
    if tag != 6 {
        return Err(OpenPgpError::NotPublicKey(tag));
    }
    if body.first() != Some(&4) {
        return Err(OpenPgpError::NotVersion4);
    }
    let len = u16::try_from(body.len()).map_err(|_| OpenPgpError::TooLong)?;
    let mut h = Sha1::new();
    h.update([0x99]);
    h.update(len.to_be_bytes());
    h.update(body);
    Ok(hex::encode_upper(h.finalize()))
}

/// The binary packets of a `PUBLIC KEY BLOCK`: the base64 lines after the
/// armor headers, up to the checksum line.
fn dearmor(armored: &[u8]) -> Result<Vec<u8>, OpenPgpError> {
    let text = std::str::from_utf8(armored).map_err(|_| OpenPgpError::NotArmor)?;
    let mut lines = text.lines().map(str::trim);
    lines
        .by_ref()
        .find(|l| *l == "-----BEGIN PGP PUBLIC KEY BLOCK-----")
        .ok_or(OpenPgpError::NoKeyBlock)?;
    // Armor headers (`Comment: …`) end with an empty line.
    let mut body = String::new();
    let mut in_headers = true;
    for line in lines {
        if line.starts_with("-----END") || line.starts_with('=') {
            break;
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
            } else if !line.contains(':') {
                // No headers at all: this is already base64.
                in_headers = false;
                body.push_str(line);
            }
            continue;
        }
        body.push_str(line);
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(OpenPgpError::Base64)
}

/// The first packet's tag and body (old and new packet formats, definite
/// lengths only).
fn first_packet(p: &[u8]) -> Result<(u8, &[u8]), OpenPgpError> {
    let short = || OpenPgpError::Truncated;
    let b0 = *p.first().ok_or_else(short)?;
    if b0 & 0x80 == 0 {
        return Err(OpenPgpError::NotPacket);
    }
    let (tag, header, len) = if b0 & 0x40 != 0 {
        let o1 = *p.get(1).ok_or_else(short)? as usize;
        let (header, len) = match o1 {
            0..=191 => (2, o1),
            192..=223 => (
                3,
                ((o1 - 192) << 8) + *p.get(2).ok_or_else(short)? as usize + 192,
            ),
            255 => (6, be(p.get(2..6).ok_or_else(short)?)),
            _ => return Err(OpenPgpError::PacketLength("partial")),
        };
        (b0 & 0x3f, header, len)
    } else {
        let (header, len) = match b0 & 3 {
            0 => (2, *p.get(1).ok_or_else(short)? as usize),
            1 => (3, be(p.get(1..3).ok_or_else(short)?)),
            2 => (5, be(p.get(1..5).ok_or_else(short)?)),
            _ => return Err(OpenPgpError::PacketLength("indeterminate")),
        };
        ((b0 >> 2) & 0x0f, header, len)
    };
    let body = p.get(header..header + len).ok_or_else(short)?;
    Ok((tag, body))
}

fn be(bytes: &[u8]) -> usize {
    bytes.iter().fold(0, |n, &b| (n << 8) | b as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from gpg (tests/vectors/README.md).
    #[test]
    fn fingerprints_match_gpg() {
        let stable = include_bytes!("../../tests/vectors/openpgp/debian-bookworm-stable.asc");
        assert_eq!(
            primary_fingerprint(stable).unwrap(),
            "4D64FEC119C2029067D6E791F8D2585B8783D481"
        );
        let automatic = include_bytes!("../../tests/vectors/openpgp/debian-bookworm-automatic.asc");
        assert_eq!(
            primary_fingerprint(automatic).unwrap(),
            "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"
        );
    }

    #[test]
    fn refuses_what_is_not_a_key() {
        assert!(primary_fingerprint(b"<html>not found</html>").is_err());
        assert!(primary_fingerprint(&vec![b'a'; MAX_KEY_BYTES + 1])
            .unwrap_err()
            .to_string()
            .contains("over"));
        let cut = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGPL\n-----END PGP PUBLIC KEY BLOCK-----\n";
        assert!(primary_fingerprint(cut.as_bytes()).is_err());
    }
}
