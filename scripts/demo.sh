#!/usr/bin/env bash
# The main job on the local federation: build (or reuse) the pinned Kubernetes/Karmada binaries,
# bring up 3 member clusters, start fedstate-scheduler, fedstate-manager, one fedstate-mongo-agent
# per member and the replica-set simulator, apply FedState's MultiCloudMongoDB sample, and print
# the placement and the resulting status. `--keep` leaves it all running until Ctrl-C.
# Every long step prints what it does and how far it is (a cold build takes many minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

say "step 1/3: the pinned Go binaries (Kubernetes, Karmada, etcd, kwok): deploy/local/build.sh"
bin_dir="$(deploy/local/build.sh | tail -n 1)"
export FEDSTATE_LOCAL_BIN_DIR="$bin_dir"

say "step 2/3: building the demo (cargo build -p fedstate-e2e --bin fedstate-demo --bin fedstate-sim-shell)"
total="$(cargo tree --locked -q -p fedstate-e2e -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)$//' | sort -u | wc -l)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$SECONDS
cargo build --locked -p fedstate-e2e --bin fedstate-demo --bin fedstate-sim-shell 2>"$log" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 15); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "  cargo build: $(grep -c '^ *Compiling ' "$log" || true) crates compiled (of about $total in the graph; fresh ones are skipped), $((SECONDS - start))s elapsed"
    fi
done
if ! wait "$pid"; then
    say "cargo build failed:"
    tail -n 40 "$log" >&2
    exit 1
fi
say "  built in $((SECONDS - start))s"
target_dir="$(cargo metadata --locked --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

say "step 3/3: the demo (federation up, FedState, the seed sample to Health)"
exec "$target_dir/debug/fedstate-demo" "$@"
