# Sourced by the VM tests (run, real-cluster, diskless-control-plane, reproducible
# production). Needs $kb (the kubeboot binary), say and fail.

# For `tied CMD... &` only (it execs): CMD gets SIGTERM when this script ends,
# however it ends (a SIGKILL from a time limit runs no trap), so nothing a test
# started outlives it; $! is CMD's pid. With E2E_KEEP=1 (leave a failed run's
# VMs up) nothing is tied.
tied() {
    if [ "${E2E_KEEP:-}" = 1 ]; then exec "$@"; fi
    exec setpriv --pdeathsig TERM -- "$@"
}

# Delete network namespace NS once this script is gone, however it ended (after
# its own cleanup, deleting it again is harmless). Bounded: at most 12 hours.
delete_netns_after_script() { # NS
    [ "${E2E_KEEP:-}" = 1 ] && return 0
    local script=$$
    ( trap '' INT TERM HUP
      for _ in $(seq 1 8640); do kill -0 "$script" 2>/dev/null || break; sleep 5; done
      ip netns del "$1" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
    disown $!
}

# The user's Kubernetes release artifacts (docs/real-kubernetes.md), or a clear
# "not run" and exit 2 when none are named: a script that did not run never says ok.
need_kubernetes() { # SCRIPT-NAME
    if [ -z "${KUBEBOOT_KUBERNETES:-}" ]; then
        echo "not run: $1 — needs real Kubernetes: set KUBEBOOT_KUBERNETES to the release artifacts (docs/real-kubernetes.md)" >&2
        exit 2
    fi
    [ -e "$KUBEBOOT_KUBERNETES" ] || fail "KUBEBOOT_KUBERNETES=$KUBEBOOT_KUBERNETES does not exist"
}

# `image build --images` for what the release lacks (pause, CoreDNS, …), if given.
images_args=()
[ -z "${KUBEBOOT_IMAGES:-}" ] || images_args=(--images "$KUBEBOOT_IMAGES")

# Build (or reuse, E2E_IMAGE) the production image and require it air-gapped: the
# VMs have no route out, so an image that would pull at first boot cannot pass.
production_image() { # DIR
    if [ -n "${E2E_IMAGE:-}" ]; then
        say "reusing the production image in $E2E_IMAGE"
    else
        say "building the production image (air-gapped, from $KUBEBOOT_KUBERNETES)"
        "$kb" image build --profile production --kubernetes "$KUBEBOOT_KUBERNETES" "${images_args[@]}" --out "$1" >&2
    fi
    local manifest=${E2E_IMAGE:-$1}/manifest.json
    python3 - "$manifest" <<'PY' || fail "the production image is not air-gapped, and the VMs reach no registry: give the missing images in KUBEBOOT_IMAGES (docs/real-kubernetes.md)"
import json, sys
k = json.load(open(sys.argv[1])).get("kubernetes") or {}
missing = [name for name, source in k.get("images", []) if source == "missing" and "/coredns" not in name]
if missing:
    print("missing from the image: " + ", ".join(missing), file=sys.stderr)
sys.exit(0 if k.get("air_gapped") else 1)
PY
}

# A directory with the release's kubeadm and kubectl, and an etcd and etcdctl
# (the release's if it carries them, else this machine's: scripts/setup.sh).
kubernetes_bin() { # WORKDIR → prints the directory
    local into=$1 bin etcd_dir
    bin=$("$kb" image kubernetes --kubernetes "$KUBEBOOT_KUBERNETES" --unpack-into "$into/unpacked" --output json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["bin"])') || fail "the Kubernetes artifacts do not check out"
    mkdir -p "$into/bin"
    ln -sf "$bin/kubeadm" "$into/bin/kubeadm"
    ln -sf "$bin/kubectl" "$into/bin/kubectl"
    etcd_dir=$(dirname "${KUBEBOOT_ETCD:-/var/tmp/kubeboot-etcd/usr/bin/etcd}")
    for p in etcd etcdctl; do
        if [ -x "$bin/$p" ]; then ln -sf "$bin/$p" "$into/bin/$p"; else ln -sf "$etcd_dir/$p" "$into/bin/$p"; fi
        [ -x "$into/bin/$p" ] || fail "no $p: the release carries none and $etcd_dir has none (run scripts/setup.sh)"
    done
    echo "$into/bin"
}
