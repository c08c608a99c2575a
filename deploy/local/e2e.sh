#!/usr/bin/env bash
# The e2e tier: build (or reuse) the pinned Go binaries, run the e2e tests (each test binary
# brings up its own local federation and tears it down), then check that no process of the e2e
# federation is left. Extra arguments go to the test binaries (e.g. a test name filter).
#
#   deploy/local/e2e.sh                   # all e2e tests
#   deploy/local/e2e.sh federation_smoke  # just the smoke tests
#
# The test binaries run in lanes (FEDSTATE_E2E_LANES, default 2), each lane one binary after
# another with its own federation: its own run directory (<run dir>/lane-<n>) and port base
# (FEDSTATE_E2E_PORT_BASE, default 32000, + 400 per lane with 3 members). A suite mostly waits on the federation
# (one took 48 CPU-seconds in 158 s here), so two lanes share 2 cores without slowing each other
# much. Each lane's member VIPs are its own (127.0.<lane>.<member>, FEDSTATE_LOCAL_VIP_NET), so
# suites that serve simulated members at <member VIP>:<node port> can run side by side although
# each member apiserver picks node ports at random. The longest suites are spread by hand
# (lane_one, from CI's timings) so the lanes take about as long; the rest go round the other lanes.
# Each line of a lane's output starts with "[lane <n>]". FEDSTATE_E2E_LANES=1 runs everything in
# one lane, in <run dir> itself.
#
# FEDSTATE_E2E_SOAK_SMOKE=1 (scripts/test-all.sh sets it unless told 0) ends the last lane
# with the soak test's short version (target/debug/soak --smoke, what `benches/soak.sh --smoke`
# runs) on a federation of its own at that lane's ports and VIPs, once the lane's suites are done
# (it serves simulated members too); not when a test filter is given. The lanes take about as
# long without it (CI, 2026-12-04: lane 1 934 s, lane 2 960 s; the smoke about 400 s).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
run_dir="${FEDSTATE_E2E_DIR:-$repo/.fedstate-local/e2e}"

lanes="${FEDSTATE_E2E_LANES:-2}"
[[ "$lanes" =~ ^[1-9]$ ]] || { echo "e2e: FEDSTATE_E2E_LANES must be 1 to 9, not '$lanes'" >&2; exit 2; }
# Lane n's federation: ports from base + stride·(n−1), a stride of 100 per member and 100 for the
# control plane (the port plan of deploy/local/src/layout.rs). Every port must stay below Linux's
# ephemeral range (ip_local_port_range, 32768 here), where any outgoing connection may hold one
# (a lane at 33000 lost its kube-scheduler's port that way).
port_base="${FEDSTATE_E2E_PORT_BASE:-32000}"
members="${FEDSTATE_E2E_MEMBERS:-3}"
stride=$((100 * (members + 1)))
ephemeral_start="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
# The last lane's highest port: its member `members`'s last (member i uses base + 100·i + 0..6).
top=$((port_base + stride * (lanes - 1) + 100 * members + 6))
if ((top >= ephemeral_start)); then
    echo "e2e: $lanes lane(s) of $members members need ports $port_base–$top, which reach the ephemeral range (from $ephemeral_start): lower FEDSTATE_E2E_PORT_BASE (to $((port_base - (top - ephemeral_start) - 1)) or less) or FEDSTATE_E2E_LANES" >&2
    exit 2
fi

bin_dir="$("$here/build.sh" | tail -n 1)"
export FEDSTATE_LOCAL_BIN_DIR="$bin_dir" FEDSTATE_E2E=1 FEDSTATE_E2E_DIR="$run_dir"

our_dir=""
# Processes of the federation's binaries, or of ours, that still name the e2e run directory
# ("pid name" per line).
left_behind() {
    local p exe
    for p in /proc/[0-9]*; do
        exe="$(readlink "$p/exe" 2>/dev/null || true)"
        [[ "$exe" == "$bin_dir"/* || ( -n "$our_dir" && "$exe" == "$our_dir"/* ) ]] || continue
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$run_dir"; then
            echo "${p#/proc/} $(basename "$exe")"
        fi
    done
}
# Interrupted (Ctrl-C, a CI timeout): the test binaries die without their teardown, and the
# federation's processes run in their own process groups; stop them, or they hold the ports (and
# any lock this script runs under) until someone finds them.
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
}
interrupted() {
    trap - INT TERM
    echo "e2e: interrupted; stopping the tests and the federation's processes" >&2
    local pid
    for pid in "${lane_pids[@]}"; do kill_tree "$pid"; done
    left_behind | while read -r pid _; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 2
    left_behind | while read -r pid _; do kill -KILL "$pid" 2>/dev/null || true; done
    exit 130
}
lane_pids=()
trap interrupted INT TERM

status=0
# Our binaries, for the suites that run them as processes (as users run them) and build images of
# them; the tests find them next to themselves in the target directory (e2e/src/process.rs).
(cd "$repo" && cargo build -p fedstate-scheduler -p fedstate-manager -p fedstate-mongo-agent --bins) || exit 1
soak_smoke=""
if [[ "${FEDSTATE_E2E_SOAK_SMOKE:-}" == 1 && $# == 0 ]]; then
    soak_smoke=1
    (cd "$repo" && cargo build -p fedstate-benches --bin soak -p fedstate-e2e --bin fedstate-sim-shell) || exit 1
fi
our_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug"
# The test binaries of the e2e crate, built once: "name executable" per line.
suites_json="$(cd "$repo" && cargo test -p fedstate-e2e --no-run --message-format=json-render-diagnostics)" || exit 1
mapfile -t suites < <(jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test)
    | "\(.target.name) \(.executable)"' <<<"$suites_json" | sort)
((${#suites[@]})) || { echo "e2e: cargo built no test binary of fedstate-e2e" >&2; exit 1; }

# CI, 2026-12-03 (4578356): agent_federated 320 s, agent_replset 331 s, karmada_parity 307 s here;
# restarts 293 s, manager_propagation 161 s, federation_smoke 135 s, scheduler 119 s, install 100 s
# and the small ones in lane 2, then the soak smoke (see above).
lane_one=" agent_federated agent_replset karmada_parity "
declare -A lane_of=()
next=2
for entry in "${suites[@]}"; do
    name="${entry%% *}"
    if ((lanes == 1)) || [[ "$lane_one" == *" $name "* ]]; then
        lane_of[$name]=1
    else
        lane_of[$name]=$next
        next=$((next + 1))
        ((next <= lanes)) || next=2
    fi
done
lane_of[soak-smoke]=$lanes
lane_dir() { if ((lanes == 1)); then echo "$run_dir"; else echo "$run_dir/lane-$1"; fi; }

test_args=("$@")
results="$(mktemp)" digests="$(mktemp)"
# What a failed suite said about its failure, for the end of the run (where CI's excerpt of the
# output is): each panic with the lines after it, the harness's list of failed tests, the last lines.
digest() {
    local lane=$1 name=$2 out=$3
    echo "---- lane $lane: $name failed; from its output ($out):"
    grep -v -E '^ +([0-9]+: |at )' "$out" | grep -A 6 -E "panicked at|^failures:" | head -n 80 | sed 's/^/    /'
    echo "    ... its last lines:"
    tail -n 15 "$out" | sed 's/^/    /'
}
# Runs the suites of lane $1, one after another; every suite runs and reports, whatever failed
# before it. Returns non-zero if any failed.
run_lane() {
    local lane=$1 dir base failed=0 entry name exe start rc
    dir="$(lane_dir "$lane")" base=$((port_base + stride * (lane - 1)))
    rm -rf "$dir/failed" # an earlier run's
    for entry in "${suites[@]}" ${soak_smoke:+"soak-smoke $our_dir/soak"}; do
        name="${entry%% *}" exe="${entry#* }"
        [[ "${lane_of[$name]:-1}" == "$lane" ]] || continue
        start=$SECONDS rc=0
        echo "e2e: running $name (run directory $dir)"
        mkdir -p "$dir"
        # Each suite's output also goes to <lane dir>/<suite>.out, for the digest of failures below.
        if [[ "$name" == soak-smoke ]]; then
            FEDSTATE_LOCAL_VIP_NET=$lane "$exe" --smoke --members "$members" --port-base "$base" --run-dir "$dir/soak" \
                2>&1 | tee "$dir/$name.out" || rc=${PIPESTATUS[0]}
        else
            # As cargo runs a test binary: from the package's directory, with its manifest directory.
            (cd "$repo/e2e" && FEDSTATE_E2E_DIR="$dir" FEDSTATE_E2E_PORT_BASE=$base FEDSTATE_LOCAL_VIP_NET=$lane \
                CARGO_MANIFEST_DIR="$repo/e2e" "$exe" --nocapture --test-threads=1 "${test_args[@]}") \
                2>&1 | tee "$dir/$name.out" || rc=${PIPESTATUS[0]}
        fi
        if ((rc == 0)); then
            echo "lane $lane  $(printf '%-20s' "$name") ok      $((SECONDS - start))s" >>"$results"
        else
            echo "lane $lane  $(printf '%-20s' "$name") FAILED  $((SECONDS - start))s (exit $rc)" >>"$results"
            failed=1
            digest "$lane" "$name" "$dir/$name.out" >>"$digests"
            # The lane's next suite starts a federation in the same directory: keep this one's logs.
            if [[ -d "$dir/logs" ]]; then
                rm -rf "$dir/failed/$name" && mkdir -p "$dir/failed" && cp -r "$dir/logs" "$dir/failed/$name"
                echo "e2e: $name failed; its processes' logs are kept in $dir/failed/$name"
            fi
        fi
    done
    return "$failed"
}
# In the background, so a signal reaches the trap at once (bash runs traps only between commands).
for ((lane = 1; lane <= lanes; lane++)); do
    (
        set -o pipefail
        run_lane "$lane" 2>&1 | sed -u "s/^/[lane $lane] /"
    ) &
    lane_pids+=($!)
done
for pid in "${lane_pids[@]}"; do wait "$pid" || status=1; done
lane_pids=()
echo "e2e: suites (wall time each, lanes run side by side):"
sort "$results" | sed 's/^/    /'
if [[ -s "$digests" ]]; then
    echo "e2e: the failures:"
    cat "$digests"
fi
rm -f "$results" "$digests"

mapfile -t left < <(left_behind)
if ((${#left[@]})); then
    echo "e2e: processes left behind (pid name): ${left[*]}" >&2
    echo "e2e: logs in $run_dir/**/logs" >&2
    exit 1
fi
if ((status != 0)); then
    echo "e2e: tests failed; each failed suite's process logs are kept in <lane directory>/failed/<suite> ($(lane_dir 1)/failed for lane 1, and so on)" >&2
fi
exit "$status"
