#!/bin/sh
# Load benchmark of `kubeboot serve` on this machine: N simulated nodes, each
# with its own HTTPS connection, posting their status events. Prints events/s,
# p50/p99 latency and the receiver's peak RSS. Not a test: figures only.
#   scripts/bench-serve.sh            # 1,000 x 10 then 10,000 x 10
#   scripts/bench-serve.sh 500 16     # one run: nodes, events per node
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p kubeboot -p kubeboot-tests --bin kubeboot --bin kubeboot-load
ulimit -n 65536 2>/dev/null || true
if [ $# -ge 1 ]; then
    exec target/release/kubeboot-load --kubeboot target/release/kubeboot --nodes "$1" --events "${2:-10}"
fi
for nodes in 1000 10000; do
    target/release/kubeboot-load --kubeboot target/release/kubeboot --nodes "$nodes" --events 10
done
