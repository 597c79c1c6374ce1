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
echo "setup: ok ($(cargo --version); $(cargo deny --version); containerd $("$CONTAINERD_DIR/usr/bin/containerd" --version | awk '{print $3}'))"
