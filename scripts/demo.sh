#!/usr/bin/env bash
# The main job on the local federation: build (or reuse) the pinned Kubernetes/Karmada binaries,
# bring up 3 member clusters, start fedstate-scheduler, fedstate-manager, one fedstate-mongo-agent
# per member and the replica-set simulator, apply FedState's MultiCloudMongoDB sample, and print
# the placement and the resulting status. `--keep` leaves it all running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir="$(deploy/local/build.sh | tail -n 1)"
export FEDSTATE_LOCAL_BIN_DIR="$bin_dir"
cargo build --locked -q -p fedstate-e2e --bin fedstate-demo --bin fedstate-sim-shell
exec target/debug/fedstate-demo "$@"
