//! The PXE set: the image's kernel and initrd next to an iPXE script that
//! passes the document's location on the kernel command line
//! (`kubeboot.url=`, `kubeboot.ca_hash=`, optionally `kubeboot.token=`).

use std::path::Path;

pub struct PxeParams<'a> {
    /// Where the node fetches kernel and initrd (the directory this script is served from).
    pub base_url: &'a str,
    /// The node document URL, e.g. https://10.0.0.2:8443/v1/documents/worker.
    pub document_url: &'a str,
    pub ca_hash: &'a str,
    pub token: Option<&'a str>,
    /// The root partition to boot (disk nodes); None for the image's default.
    pub extra_cmdline: &'a str,
}

/// The kernel command line for a PXE-booted node.
pub fn cmdline(p: &PxeParams) -> String {
    let mut c = format!(
        "console=ttyS0,115200 systemd.firstboot=off kubeboot.url={} kubeboot.ca_hash={}",
        p.document_url, p.ca_hash
    );
    if let Some(t) = p.token {
        c.push_str(&format!(" kubeboot.token={t}"));
    }
    if !p.extra_cmdline.is_empty() {
        c.push(' ');
        c.push_str(p.extra_cmdline);
    }
    c
}

pub fn ipxe_script(p: &PxeParams) -> String {
    format!(
        "#!ipxe\n# kubeboot PXE boot. Made by `kubeboot image pxe`.\ndhcp\nkernel {base}/kubeboot.vmlinuz initrd=kubeboot.initrd {cmdline}\ninitrd {base}/kubeboot.initrd\nboot\n",
        base = p.base_url.trim_end_matches('/'),
        cmdline = cmdline(p)
    )
}

/// Copy kernel and initrd from an image build into `dir` and write `boot.ipxe` (0600: it may hold a token).
pub fn write_set(image_dir: &Path, dir: &Path, p: &PxeParams) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in ["kubeboot.vmlinuz", "kubeboot.initrd"] {
        std::fs::copy(image_dir.join(f), dir.join(f)).map_err(|e| {
            format!(
                "{}: {e} (build the image first)",
                image_dir.join(f).display()
            )
        })?;
    }
    kubeboot_core::host::write_file_atomic(&dir.join("boot.ipxe"), ipxe_script(p).as_bytes(), 0o600)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_boots_the_kernel_with_the_document_location() {
        let s = ipxe_script(&PxeParams {
            base_url: "http://10.0.0.2/pxe/",
            document_url: "https://10.0.0.2:8443/v1/documents/worker",
            ca_hash: "sha256:ab",
            token: Some("t0k"),
            extra_cmdline: "",
        });
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("kernel http://10.0.0.2/pxe/kubeboot.vmlinuz initrd=kubeboot.initrd console=ttyS0,115200"));
        assert!(s.contains("kubeboot.url=https://10.0.0.2:8443/v1/documents/worker kubeboot.ca_hash=sha256:ab kubeboot.token=t0k"));
        assert!(s.contains("initrd http://10.0.0.2/pxe/kubeboot.initrd\nboot\n"));
    }
}
