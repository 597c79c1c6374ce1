#!/usr/bin/env bash
# Figures for the node image (not a test: it prints numbers).
#   - sizes: raw (apparent and allocated), raw compressed with zstd -19, kernel, initrd, UKI;
#   - build time, cold (empty package cache) and warm;
#   - under qemu (TCG here): power-on → first status event received by `kubeboot serve`,
#     power-on → done, and a baseline boot of the same image with the agent masked
#     (power-on → the login prompt of multi-user.target), with the agent's cost as a ratio within the same run.
# Usage: scripts/image-figures.sh [WORKDIR]   (default: a new directory under /var/tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash scripts/setup-image.sh >/dev/null
cargo build --release --locked -q -p kubeboot --bin kubeboot   # alone: no test hooks
cargo build --release --locked -q -p kubeboot-tests --bin kubeadm-test-double --bin apiserver-double
kb=$repo/target/release/kubeboot
work=${1:-$(mktemp -d /var/tmp/kubeboot-figures.XXXXXX)}
mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

if [ -n "${FIGURES_IMAGE:-}" ]; then
    img=$FIGURES_IMAGE   # an existing build: skip the build and size figures
else
echo "== build"
t0=$(now); "$kb" image build --profile test --out "$work/cold" --cache "$work/empty-cache" >/dev/null 2>&1; t1=$(now)
"$kb" image build --profile test --out "$work/warm" --cache "$work/empty-cache" >/dev/null 2>&1; t2=$(now)
echo "build, cold package cache: $(secs "$t0" "$t1") s"
echo "build, warm package cache: $(secs "$t1" "$t2") s"
img=$work/warm

echo "== sizes"
zstd -q -19 -T0 -f "$img/kubeboot.raw" -o "$work/kubeboot.raw.zst"
for f in kubeboot.raw kubeboot.vmlinuz kubeboot.initrd kubeboot.efi; do
    printf '%-18s %8.1f MiB apparent, %8.1f MiB allocated\n' "$f" \
        "$(echo "$(stat -c %s "$img/$f") / 1048576" | bc -l)" "$(echo "$(du -k "$img/$f" | cut -f1) / 1024" | bc -l)"
done
printf '%-18s %8.1f MiB\n' "kubeboot.raw.zst" "$(echo "$(stat -c %s "$work/kubeboot.raw.zst") / 1048576" | bc -l)"
fi

echo "== boot under qemu (TCG unless on bare metal with /dev/kvm; KUBEBOOT_ACCEL overrides)"
"$kb" bundle new --endpoint 10.0.2.100:6443 --out "$work/bundle" --force >/dev/null 2>&1
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(port); ap=$(port)
"$kb" serve --listen "127.0.0.1:$sp" --data "$work/serve" --san 10.0.2.100 --output json >"$work/serve.json" 2>/dev/null &
pids+=($!)
"$repo/target/release/apiserver-double" --bundle "$work/bundle" --listen "127.0.0.1:$ap" --name 10.0.2.100 >/dev/null 2>&1 &
pids+=($!)
sleep 1
hash=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ca_cert_hash"])' "$work/serve.json")
token=$("$kb" serve token add --data "$work/serve" --scope report)
{ cat "$work/bundle/nodes/worker.toml"; printf '\n[node]\nname = "figures"\n[preflight]\nclock_sync_timeout_seconds = 2\n[report]\nurl = "https://10.0.2.100:8443/v1"\ntoken = "%s"\nca_cert_hash = "%s"\n' "$token" "$hash"; } >"$work/figures.toml"
"$kb" seed --document "$work/figures.toml" --out "$work/figures.iso" 2>/dev/null

# Baseline: same image, same seed, agent masked; until the login prompt (multi-user.target).
t0=$(now)
"$kb" image boot --image "$img" --name baseline --workdir "$work/vms" --seed "$work/figures.iso" --no-reboot \
    --direct-cmdline "systemd.mask=kubeboot.service systemd.show_status=1" --until "figures login:" --timeout 600 2>/dev/null
t_base=$(now)

t0b=$(now)
"$kb" image boot --image "$img" --name agent --workdir "$work/vms" --seed "$work/figures.iso" --no-reboot \
    --direct-cmdline "systemd.show_status=1" --forward "8443:$sp" --forward "6443:$ap" --timeout 600 >/dev/null 2>&1 &
vm=$!; pids+=($vm)
first=""; done_at=""
for _ in $(seq 1 1200); do
    j=$(curl -s --cacert "$work/serve/tls/ca.crt" "https://127.0.0.1:$sp/v1/nodes/figures" || true)
    if [ -z "$first" ] && echo "$j" | grep -q '"history"'; then first=$(now); fi
    if echo "$j" | grep -q '"phase":"done","state":"succeeded"'; then done_at=$(now); break; fi
    sleep 0.5
done
kill "$vm" 2>/dev/null || true
base=$(secs "$t0" "$t_base")
echo "baseline (agent masked): power-on → login prompt: $base s"
echo "with the agent: power-on → first status event received: $(secs "$t0b" "$first") s"
echo "with the agent: power-on → done received: $(secs "$t0b" "$done_at") s"
python3 -c "import sys; print(f'ratio (done / baseline): {float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$(secs "$t0b" "$done_at")" "$base"
echo "(direct kernel boot of the disk image; TCG timings vary up to 2x between runs — compare within one run)"
