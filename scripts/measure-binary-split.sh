#!/usr/bin/env bash
# Figures, not a test: what splitting the one `kubeboot` binary would save on the
# node (issue 13). Builds the shipped binary and agent/examples/agent_only.rs (the
# agent's dry run linked with kubeboot-agent and kubeboot-core only), both with the
# release profile, and prints their sizes and the peak RSS of the same dry run,
# the median of 7 runs each.
# Usage: scripts/measure-binary-split.sh   (needs GNU time: /usr/bin/time, Debian package time)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "measure-binary-split: needs GNU time (apt-get install time)" >&2; exit 1; }
cargo build --release --locked -q -p kubeboot --bin kubeboot
cargo build --release --locked -q -p kubeboot-agent --example agent_only
one=target/release/kubeboot
split=target/release/examples/agent_only
doc=cloud-init/examples/worker.toml
[ -f "$doc" ] || { echo "measure-binary-split: $doc is missing" >&2; exit 1; }

peak_rss_kib() { # command... → median peak RSS of 7 runs, KiB (GNU time's %M)
    local i out
    out=$(mktemp)
    for i in 1 2 3 4 5 6 7; do
        /usr/bin/time -f '%M' -o "$out" "$@" >/dev/null 2>&1
        cat "$out"
    done | sort -n | sed -n 4p
    rm -f "$out"
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

one_rss=$(peak_rss_kib "$one" agent --dry-run --document "$doc" --kubeadm-version v1.28.7)
split_rss=$(peak_rss_kib "$split" "$doc" v1.28.7)
# Both must do the work (a failed run has an RSS too).
"$one" agent --dry-run --document "$doc" --kubeadm-version v1.28.7 >/dev/null
"$split" "$doc" v1.28.7 >/dev/null
printf '%-34s %10s %14s\n' binary size "dry-run RSS"
printf '%-34s %10s %11s KiB\n' "kubeboot (every command)" "$(mb "$(stat -c %s "$one")")" "$one_rss"
printf '%-34s %10s %11s KiB\n' "agent only (agent + core crates)" "$(mb "$(stat -c %s "$split")")" "$split_rss"
