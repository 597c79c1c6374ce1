//! `kubeboot.url=https://… kubeboot.ca_hash=sha256:… [kubeboot.token=…]` on the
//! kernel command line (PXE). The token is the bearer token `kubeboot serve`
//! wants for `/v1/documents/{role}`; it is as visible as the command line
//! (`/proc/cmdline`), so give PXE nodes a token of their own (serve accepts several).

use super::{fetch_document, DocumentSource, Fetcher, Loaded, SourceError};
use kubeboot_core::document::{formats, InvalidDocument};
use kubeboot_core::host::Host;

pub struct KernelCommandLine;

/// The kubeboot parameters of a kernel command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CmdlineParams {
    pub url: Option<String>,
    pub ca_hash: Option<String>,
    pub token: Option<String>,
}

pub fn parse_cmdline(cmdline: &str) -> CmdlineParams {
    let mut p = CmdlineParams::default();
    for word in cmdline.split_whitespace() {
        if let Some(v) = word.strip_prefix("kubeboot.url=") {
            p.url = Some(v.trim_matches('"').to_string());
        } else if let Some(v) = word.strip_prefix("kubeboot.ca_hash=") {
            p.ca_hash = Some(v.trim_matches('"').to_string());
        } else if let Some(v) = word.strip_prefix("kubeboot.token=") {
            p.token = Some(v.trim_matches('"').to_string());
        }
    }
    p
}

impl DocumentSource for KernelCommandLine {
    fn name(&self) -> &'static str {
        "kernel command line"
    }
    fn load(&self, host: &Host, fetch: &Fetcher) -> Result<Option<Loaded>, SourceError> {
        let Ok(cmdline) = host.read_to_string("/proc/cmdline") else {
            return Ok(None);
        };
        let params = parse_cmdline(&cmdline);
        let Some(url) = params.url else {
            return Ok(None);
        };
        if let Some(h) = &params.ca_hash {
            if let Err(why) = formats::check_ca_hash(h) {
                return Err(InvalidDocument::single(
                    "kernel command line kubeboot.ca_hash",
                    format!("{h:?} {why}"),
                    "fix the iPXE script or boot entry",
                )
                .into());
            }
        }
        let token = params.token.map(secrecy::SecretString::from);
        fetch_document(
            &url,
            params.ca_hash.as_deref(),
            token.as_ref(),
            fetch.options(),
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubeboot_params_only() {
        let p = parse_cmdline(
            "BOOT_IMAGE=/vmlinuz root=PARTUUID=x console=ttyS0 kubeboot.url=https://10.0.2.100/v1/documents/worker kubeboot.ca_hash=sha256:ab quiet",
        );
        assert_eq!(
            p.url.as_deref(),
            Some("https://10.0.2.100/v1/documents/worker")
        );
        assert_eq!(p.ca_hash.as_deref(), Some("sha256:ab"));
        assert_eq!(
            parse_cmdline("root=/dev/sda1 quiet"),
            CmdlineParams::default()
        );
    }

    mod fuzz {
        use super::*;
        use kubeboot_core::fuzz::{apply, config, edits};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config())]

            /// A mutated kernel command line never panics the parser; whatever
            /// it finds is a word of the input.
            #[test]
            fn mutated_command_lines_are_parsed_without_panics(e in edits()) {
                let seed = "BOOT_IMAGE=/vmlinuz console=ttyS0 kubeboot.url=https://10.0.0.2:8443/v1/documents/worker kubeboot.ca_hash=sha256:00ff kubeboot.token=\"abc\"";
                let line = String::from_utf8_lossy(&apply(seed.as_bytes(), &e)).into_owned();
                let p = parse_cmdline(&line);
                for v in [p.url, p.ca_hash, p.token].into_iter().flatten() {
                    prop_assert!(line.contains(&v), "{v:?} not in {line:?}");
                }
            }
        }
    }
}
