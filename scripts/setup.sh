#!/usr/bin/env bash
# Install what building and testing kubeboot needs on a fresh Debian 12 machine,
# as root. Idempotent: safe to run again; it only installs what is missing.
set -euo pipefail
. "$(dirname "$0")/lib/confirm.sh"

# cloud-init is installed for its schema checker and NoCloud reader (tests); keep it
# from ever acting on this machine's own boot.
if ! dpkg-query -W -f='${Status}' cloud-init 2>/dev/null | grep -q "install ok installed"; then
    mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled
fi

need_apt=()
# chromium: the dashboard test (headless); util-linux: unshare for the full-disk test;
# protobuf-compiler, libprotobuf-dev: protoc and its well-known types, which the etcd
# client crate needs to build etcd's gRPC API; dosfstools, mtools: vfat NoCloud seeds
# (the agent's own seed reader is tested on them); fdisk (sfdisk), e2fsprogs: the disk
# image's reproducibility step is tested on GPT images made with them; cpio, zstd: the
# diskless root archive is tested on such an image.
for pkg in ca-certificates gcc libc6-dev pkg-config coreutils openssl xorriso cloud-init python3 \
    chromium fonts-dejavu-core util-linux protobuf-compiler libprotobuf-dev dosfstools mtools fdisk e2fsprogs cpio zstd; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    confirm "setup: installing ${need_apt[*]}
  why: compilers, protoc (etcd's gRPC API for the etcd client) and openssl/xorriso for the build
  and tests; dosfstools and mtools to make vfat NoCloud seeds; fdisk, e2fsprogs, cpio and zstd
  for small GPT images and root archives in the tests; cloud-init for its schema checker
  (kept from acting on this machine by /etc/cloud/cloud-init.disabled); chromium for the
  dashboard's browser test"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "setup: cargo not found; install a stable Rust toolchain with rustup first" >&2
        exit 1
    fi
fi
if command -v rustup >/dev/null 2>&1; then
    for c in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || {
            confirm "setup: adding the Rust toolchain component $c (cargo fmt / cargo clippy)"
            rustup component add "$c"
        }
    done
fi
# cargo-deny checks licences, bans and sources in CI (deny.toml). Pinned; built from
# crates.io once (a few minutes on 2 cores), then found in ~/.cargo/bin.
DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $DENY_VERSION\$"; then
    confirm "setup: installing cargo-deny $DENY_VERSION from crates.io (cargo install --locked) into ~/.cargo/bin
  why: CI checks the dependency tree's licences, banned crates and sources with it"
    cargo install --locked --quiet cargo-deny --version "$DENY_VERSION"
fi
# A real containerd for the image-import test (tests/agent/images.rs): Debian's
# package, the one the production image ships, unpacked into /var/tmp. Not
# installed: no service is enabled or started on this machine.
CONTAINERD_DIR=/var/tmp/kubeboot-containerd
if [ ! -x "$CONTAINERD_DIR/usr/bin/ctr" ] || [ ! -x "$CONTAINERD_DIR/usr/bin/containerd" ]; then
    confirm "setup: downloading Debian's containerd package and unpacking it into $CONTAINERD_DIR
  (not installed: no service is enabled or started)
  why: a test imports the image's container archives into a real containerd"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && { apt-get download -qq containerd 2>/dev/null || { apt-get update -qq && apt-get download -qq containerd; }; })
    rm -rf "$CONTAINERD_DIR.new"
    dpkg-deb -x "$tmp"/containerd_*.deb "$CONTAINERD_DIR.new"
    rm -rf "$CONTAINERD_DIR" "$tmp"
    mv "$CONTAINERD_DIR.new" "$CONTAINERD_DIR"
fi
# A real etcd for every etcd test (tests/agent/etcd_cluster.rs, control_plane.rs):
# Debian's etcd-server package, downloaded and unpacked into /var/tmp, not installed:
# the package would enable and start etcd.service on this machine. From trixie, not
# bookworm: bookworm ships etcd 3.4.23, while kubeadm (v1.28 and later) runs etcd 3.5
# in every cluster it makes, and the replacement tests decide from the etcd 3.5 a
# real control plane runs. trixie's is 3.5.16. apt reads the
# trixie index through a private configuration under /var/tmp: this machine's apt
# sources stay as they are.
ETCD_DIR=/var/tmp/kubeboot-etcd
ETCD_SUITE=trixie
if [ ! -x "$ETCD_DIR/usr/bin/etcd" ] || [ ! -x "$ETCD_DIR/usr/bin/etcdctl" ] || ! "$ETCD_DIR/usr/bin/etcd" --version 2>/dev/null | grep -q "^etcd Version: 3\.5\."; then
    mirror=$(grep -rhoE '^(URIs:|deb) *https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v security | head -n1 | awk '{print $2}' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    confirm "setup: downloading Debian $ETCD_SUITE's etcd-server and etcd-client packages from $mirror and unpacking them into $ETCD_DIR
  (not installed: no service is enabled or started; this machine's apt sources are not changed)
  why: the etcd tests run a real etcd 3.5, the etcd kubeadm clusters run (etcdctl: the VM tests' etcd checks)"
    apt_dir=/var/tmp/kubeboot-apt-$ETCD_SUITE
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$mirror" "$ETCD_SUITE" >"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=/dev/null" -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" update -qq
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && apt-get "${apt_opts[@]}" download -qq "etcd-server/$ETCD_SUITE" "etcd-client/$ETCD_SUITE")
    rm -rf "$ETCD_DIR.new"
    for deb in "$tmp"/etcd-server_*.deb "$tmp"/etcd-client_*.deb; do dpkg-deb -x "$deb" "$ETCD_DIR.new"; done
    rm -rf "$ETCD_DIR" "$tmp"
    mv "$ETCD_DIR.new" "$ETCD_DIR"
fi
echo "setup: ok ($(cargo --version); $(cargo deny --version); containerd $("$CONTAINERD_DIR/usr/bin/containerd" --version | awk '{print $3}'); etcd $("$ETCD_DIR/usr/bin/etcd" --version | awk '/^etcd Version/ {print $3}'))"
