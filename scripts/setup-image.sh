#!/usr/bin/env bash
# Install what building and booting kubeboot images needs on Debian 12, as root:
# mkosi 24 + systemd 254 + qemu from bookworm-backports (pinned by name, so
# nothing else is upgraded), and OVMF, iPXE, socat, xorriso from bookworm.
# Idempotent. See ../shared/IMAGE-NOTES.md for why each piece is here.
set -euo pipefail
. "$(dirname "$0")/lib/confirm.sh"

# Same mirror and keyring as the machine's bookworm entry.
mirror=$(grep -rhoE '^(URIs:|deb) *https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -v security | head -n1 | awk '{print $2}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
backports=/etc/apt/sources.list.d/kubeboot-bookworm-backports.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    confirm "setup-image: adding the bookworm-backports suite from $mirror to apt's sources ($backports):
  mkosi 24 and the qemu that boots its images come from there"
    cat >"$backports" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
fi

from_backports=(mkosi systemd systemd-container systemd-boot systemd-boot-efi libnss-systemd libpam-systemd
    systemd-timesyncd systemd-sysv libudev1 qemu-system-x86 qemu-system-common qemu-system-data qemu-utils seabios e2fsprogs)
# haproxy: the control-plane load balancer of tests/e2e/real-cluster and `kubeboot up
# --profile production`, run inside their own network namespace. Debian starts its
# haproxy.service with the packaged configuration, which listens on nothing.
# iproute2: network namespaces, bridge and tap devices for multi-VM clusters.
# diffoscope-minimal: explains a difference between two builds (tests/e2e/reproducible).
# fdisk: sfdisk, which finds the disk image's partitions for the reproducibility step.
from_bookworm=(python3-pefile python3-cryptography dosfstools mtools zstd xz-utils debian-archive-keyring bubblewrap
    cpio kmod ipxe-qemu ovmf xorriso socat haproxy iproute2 curl diffoscope-minimal fdisk)

missing=()
for p in "${from_backports[@]}"; do
    v=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null || true)
    case "$v" in "install ok installed "*bpo*) ;; *) missing+=("$p/bookworm-backports") ;; esac
done
for p in "${from_bookworm[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    confirm "setup-image: installing ${missing[*]}
  why: mkosi builds the node image; it needs systemd 254 from backports, so this UPGRADES the
  host's systemd packages (only those named, pinned to backports); systemd-timesyncd comes with
  it and replaces another time daemon (ntp, chrony) if one is installed; qemu and OVMF/iPXE
  boot the images; haproxy, iproute2 and curl run the multi-VM cluster tests; diffoscope-minimal
  explains a difference between two image builds"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup-image: ok ($(mkosi --version), $(qemu-system-x86_64 --version | head -n1))"
