#!/usr/bin/env bash
# Figures for the node image (not a test: it prints numbers).
#   - sizes: raw (apparent and allocated), raw compressed with zstd -19, kernel, initrd, UKI;
#   - build time, cold (empty package cache) and warm;
#   - under qemu (TCG here), three boots of one image side by side: the agent masked,
#     the image as it ships (cloud-init and the agent), and cloud-init disabled (the agent
#     alone): power-on → systemd, → first status event, → kubeadm started, → done, → login;
#   - diskless (PXE, BIOS) with less and less memory: does the root file system fit in RAM,
#     does the node reach done, and how long from power-on.
# Usage: scripts/image-figures.sh [WORKDIR]   (default: a new directory under /var/tmp)
#   FIGURES_IMAGE=DIR: an image already built (no build or size figures);
#   FIGURES_ONLY_DISKLESS=1: only the diskless figures; FIGURES_PXE_MEMORY="MiB …": the sizes tried.
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
"$kb" serve --listen "127.0.0.1:$sp" --data "$work/serve" --san 10.0.2.100 --bundle "$work/bundle" --output json >"$work/serve.json" 2>/dev/null &
pids+=($!)
"$repo/target/release/apiserver-double" --bundle "$work/bundle" --listen "127.0.0.1:$ap" --name 10.0.2.100 >/dev/null 2>&1 &
pids+=($!)
sleep 1
hash=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ca_cert_hash"])' "$work/serve.json")
token=$("$kb" serve token add --data "$work/serve" --scope report)
# No [node] name: each boot's seed names its machine (meta-data local-hostname), which
# the agent takes itself when cloud-init is disabled. One name per boot, so the
# receiver keeps their reports apart.
{ cat "$work/bundle/nodes/worker.toml"; printf '\n[preflight]\nclock_sync_timeout_seconds = 2\n[report]\nurl = "https://10.0.2.100:8443/v1"\ntoken = "%s"\nca_cert_hash = "%s"\n' "$token" "$hash"; } >"$work/figures.toml"
for n in baseline cloud-init no-cloud-init; do
    "$kb" seed --document "$work/figures.toml" --hostname "figures-$n" --out "$work/$n.iso" 2>/dev/null
done

# Three boots of the same image with the same seed, one after the other (TCG timings
# vary up to 2x between runs: compare within one run). Host-side times of the
# serial console's lines (followed every 50 ms) and of the receiver's answers:
#   baseline   - the agent masked: no agent at all;
#   cloud-init - the image as it ships: cloud-init and the agent;
#   no-cloud-init - cloud-init=disabled on the kernel command line: the agent alone
#                 reads the NoCloud seed (its document and local-hostname).
# Columns: power-on → the main system's systemd starts (its "Welcome to", after the
# initrd's) → the agent's first status event on the console → that event received
# by serve → kubeadm started (console) → done received → the login prompt.
cat >"$work/follow.py" <<'PY'
import json, re, sys, time, urllib.request, ssl
log, until_s, url, ca, done_file = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
t0 = float(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca) if url else None
seen, welcomes, pos, buf = {}, 0, 0, ""
deadline = time.time() + until_s
last_poll = 0.0
def mark(k):
    if k not in seen:
        seen[k] = time.time() - t0
while time.time() < deadline:
    try:
        with open(log, "rb") as f:
            f.seek(pos)
            chunk = f.read()
            pos += len(chunk)
    except FileNotFoundError:
        chunk = b""
    buf += chunk.decode("utf-8", "replace")
    *lines, buf = buf.split("\n")
    for line in lines:
        if "Welcome to" in line:
            welcomes += 1
            if welcomes == 2:
                mark("systemd")
        if re.search(r"kubeboot: \[[^]]*\] \w+ started", line):
            mark("first_console")
        if re.search(r"kubeboot: \[[^]]*\] kubeadm started", line):
            mark("kubeadm_console")
        if " login: " in line or line.rstrip().endswith(" login:"):
            mark("login")
    if url and time.time() - last_poll > 0.5:
        last_poll = time.time()
        try:
            j = json.load(urllib.request.urlopen(url, context=ctx, timeout=2))
            if j.get("history"):
                mark("first_received")
            if j.get("phase") == "done" and j.get("state") == "succeeded":
                mark("done_received")
        except Exception:
            pass
    if "login" in seen and (not url or "done_received" in seen):
        break
    time.sleep(0.05)
json.dump(seen, open(done_file, "w"))
PY
measure() { # name, kernel command line extra, with the receiver (1) or not (0)
    local name=$1 extra=$2 receiver=$3 vm t0 url=""
    [ "$receiver" = 1 ] && url="https://127.0.0.1:$sp/v1/nodes/figures-$name"
    rm -f "$work/vms/$name.serial.log"
    t0=$(now)
    "$kb" image boot --image "$img" --name "$name" --workdir "$work/vms" --seed "$work/$name.iso" --no-reboot \
        --direct-cmdline "systemd.show_status=1 $extra" --forward "8443:$sp" --forward "6443:$ap" --timeout 900 >/dev/null 2>&1 &
    vm=$!; pids+=($vm)
    python3 "$work/follow.py" "$work/vms/$name.serial.log" 900 "$url" "$work/serve/tls/ca.crt" "$work/$name.times.json" "$t0"
    kill "$vm" 2>/dev/null || true
    wait "$vm" 2>/dev/null || true
}
if [ -z "${FIGURES_ONLY_DISKLESS:-}" ]; then
measure baseline "systemd.mask=kubeboot.service" 0
measure cloud-init "" 1
measure no-cloud-init "cloud-init=disabled" 1
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
cols = [("systemd", "systemd starts"), ("first_console", "first event (console)"),
        ("first_received", "first event received"), ("kubeadm_console", "kubeadm started"),
        ("done_received", "done received"), ("login", "login prompt")]
print("seconds from power-on (host clock)")
print(f"{'boot':14}" + "".join(f"{c[1]:>23}" for c in cols) + f"{'first event - systemd':>24}")
for name in ["baseline", "cloud-init", "no-cloud-init"]:
    t = json.load(open(f"{w}/{name}.times.json"))
    row = "".join(f"{t[k]:23.1f}" if k in t else f"{'-':>23}" for k, _ in cols)
    gap = f"{t['first_console'] - t['systemd']:24.1f}" if "first_console" in t and "systemd" in t else f"{'-':>24}"
    print(f"{name:14}{row}{gap}")
PY
echo "(direct kernel boot of the disk image; baseline: the agent masked. TCG timings vary up to 2x between runs — compare within one run)"
fi

echo "== diskless (PXE): how much memory a node needs"
# The PXE set of the same image; the served worker document is the figures document,
# named per boot. BIOS boots through qemu's iPXE and TFTP. Each boot ends at done, at a
# failed phase, at a kernel panic or when ramroot powers off (a root too big for the
# memory); 600 s at most. Test profile: no Kubernetes workload in that RAM.
dtoken=$("$kb" serve token add --data "$work/serve" --scope documents:worker)
printf '%s\n' "$dtoken" >"$work/dtoken"; chmod 600 "$work/dtoken"
"$kb" image pxe --image "$img" --out "$work/pxe" --document-url https://10.0.2.100:8443/v1/documents/worker \
    --ca-hash "$hash" --token-file "$work/dtoken" >/dev/null
settled() { # node name → 0 when done or failed
    curl -s --cacert "$work/serve/tls/ca.crt" "https://127.0.0.1:$sp/v1/nodes/$1" | python3 -c '
import json, sys
n = json.load(sys.stdin)
sys.exit(0 if n["state"] == "failed" or n["phase"] == "done" else 1)' 2>/dev/null
}
printf '%-10s %-50s %s\n' "memory" "how it ended" "power-on → done received"
for mib in ${FIGURES_PXE_MEMORY:-1024 1536 1792 2048}; do
    name=pxe-$mib
    { cat "$work/figures.toml"; printf '\n[node]\nname = "figures-%s"\n' "$name"; } >"$work/bundle/nodes/worker.toml"
    t0=$(now)
    "$kb" image boot --pxe "$work/pxe" --firmware bios --memory-mib "$mib" --name "$name" --workdir "$work/vms" \
        --no-reboot --forward "8443:$sp" --forward "6443:$ap" --timeout 600 --until "Kernel panic" >/dev/null 2>&1 &
    vm=$!; pids+=($vm)
    python3 "$work/follow.py" "$work/vms/$name.serial.log" 600 "https://127.0.0.1:$sp/v1/nodes/figures-$name" \
        "$work/serve/tls/ca.crt" "$work/$name.times.json" "$t0" &
    follower=$!
    while kill -0 "$vm" 2>/dev/null && kill -0 "$follower" 2>/dev/null && ! settled "figures-$name"; do sleep 2; done
    sleep 3 # the follower notes done
    kill "$vm" "$follower" 2>/dev/null || true
    wait "$vm" "$follower" 2>/dev/null || true
    serial=$work/vms/$name.serial.log
    ended=$({ grep -a -o "kubeboot: \[[^]]*\] [a-z]* failed[^:]*: [a-z_]*" "$serial" || true; } | tail -n 1 | sed 's/^kubeboot: \[[^]]*\] //')
    [ -z "$ended" ] && ended=$({ grep -a -o "root file system in RAM: tmpfs, [0-9]* MiB used" "$serial" || true; } | head -n 1)
    grep -aq "could not unpack the whole root" "$serial" && ended="root did not fit: ramroot powered off"
    grep -aq "Kernel panic" "$serial" && ended="kernel panic"
    done_at=$(python3 -c 'import json, sys
t = json.load(open(sys.argv[1]))
print("%.1f s" % t["done_received"] if "done_received" in t else "-")' "$work/$name.times.json" 2>/dev/null || echo "-")
    [ "$done_at" != - ] && ended="done ($({ grep -a -o "[0-9]* MiB used" "$serial" || true; } | head -n 1) by the root)"
    printf '%-10s %-50s %s\n' "$mib MiB" "${ended:--}" "$done_at"
done
