#!/usr/bin/env bash
# Runs every test tier of FedState, in order, printing how long each stage took:
#   1. static checks   cargo fmt --check, cargo clippy --all-targets -D warnings
#   2. CRD drift        deploy/crds/ must equal what `crdgen` generates from api/
#   3. unit + scenario  cargo test --workspace (pure planners, proptests, mock-apiserver scenarios,
#                       in-process gRPC estimators, Lua interpreter tests)
#   4. fuzz             every fuzz target of fuzz/ for a fixed time each (FEDSTATE_FUZZ_SECONDS,
#                       default 10 s; seeds in fuzz/seeds/, failures kept in fuzz/regressions/)
#   5. e2e              the local federation (docs/local-federation.md: real kube-apiserver, etcd,
#                       Karmada, kwok): builds or reuses the pinned Go binaries, then runs e2e/
#                       against them, its test binaries in two lanes side by side (each on its
#                       own federations). A cold Go build starts in the background when the
#                       script starts (see below)
#   6. bench smoke      the side-by-side scheduling benchmark, short (benches/side-by-side.sh
#                       --smoke: 200 bindings per scheduler, one round, on its own federation):
#                       fails if fedstate-scheduler makes more than 2 binding writes per decision
#                       or any scheduler stops placing; skipped with the e2e tier. Not in the
#                       default stages: it took 169 s here (2026-12-01: 16 s build, 20 s
#                       federation, 118 s benchmark), over what CI may add. Run it with
#                       `scripts/test-all.sh bench`
#   7. soak smoke       the soak test, short (benches/soak.sh --smoke: 5 MultiCloudMongoDBs and
#                       200 bindings created, scaled and deleted for 5 minutes, scheduler,
#                       manager and agents as processes, on its own federation): fails if an
#                       object does not converge within 150 s or a process's RSS grows more than
#                       10 % from the second quarter to the last; skipped with the e2e tier.
#                       Runs inside the e2e stage, at the end of its last lane
#                       (FEDSTATE_E2E_SOAK_SMOKE=1, deploy/local/e2e.sh; about 400 s there);
#                       FEDSTATE_E2E_SOAK_SMOKE=0 leaves it out. Its earlier failures at these
#                       settings had two causes, both fixed on 2026-12-04 (benches/README.md,
#                       "Soak test"). `scripts/test-all.sh soak` runs it alone.
#   8. real mongod      only when FEDSTATE_MONGOD points at a mongod binary; otherwise skipped
#                       (its version-upgrade test also needs FEDSTATE_MONGOD_NEXT, the next major)
#
# Stages can be picked: `scripts/test-all.sh unit e2e`. Default: all but bench and soak (whose smoke runs inside e2e).
# Environment: FEDSTATE_SKIP_E2E=1 skips stages 5–7 (it says so); FEDSTATE_FUZZ_SECONDS=N; FEDSTATE_MONGOD=/path/to/mongod.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(static crds unit fuzz e2e mongod)
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# CI is reproducible: every proptest (the fuzz targets' batches too) starts from a fixed seed, so
# a red run is red again on rerun and a green one does not turn red by chance. Set another seed,
# or run without CI=true (a random seed per run), to explore further.
if [[ "${CI:-}" == true ]]; then
  export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261201}"
fi

# The pinned Go binaries (deploy/local/build.sh) take tens of minutes to build on an empty Go
# cache. When a stage that needs them is picked and they are not built yet, their build starts now,
# in the background at the lowest CPU priority, so it uses the cores the cargo stages leave idle
# (the fuzz stage runs one target at a time, tests sleep) and the module downloads overlap them;
# the first stage that needs the binaries waits for it. Its output goes to go-build.log.
go_build_pid=""
go_build_log="$PWD/.fedstate-local/go-build.log"
needs_go_binaries() {
  [ "${FEDSTATE_SKIP_E2E:-}" = 1 ] && return 1
  local s
  for s in "${stages[@]}"; do
    case "$s" in e2e | bench | soak) return 0 ;; esac
  done
  return 1
}
if needs_go_binaries && ! deploy/local/build.sh bin-dir >/dev/null 2>&1; then
  mkdir -p "$(dirname "$go_build_log")"
  echo "==> the pinned Go binaries are not built: building them in the background (log: $go_build_log)"
  # Its own session, so a failed stage can stop the whole build (go and its compilers) at once.
  setsid nice -n 19 deploy/local/build.sh >"$go_build_log" 2>&1 &
  go_build_pid=$!
  trap '[ -z "$go_build_pid" ] || kill -TERM -- "-$go_build_pid" 2>/dev/null || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
# Waits for the background Go build, if one runs; fails with its log's tail if it failed.
wait_for_go_binaries() {
  [ -n "$go_build_pid" ] || return 0
  local start status=0
  start=$(date +%s)
  echo "waiting for the background Go build (log: $go_build_log)"
  wait "$go_build_pid" || status=$?
  go_build_pid=""
  if [ "$status" != 0 ]; then
    echo "the Go build failed (exit $status); the end of $go_build_log:" >&2
    tail -n 40 "$go_build_log" >&2
    return 1
  fi
  echo "the Go build is done (waited $(( $(date +%s) - start ))s); $(grep -c . "$go_build_log") lines in its log"
}

summary=()
run_stage() { # name, function
  local name=$1 start end
  start=$(date +%s)
  echo "==> [$name] started $(date -u +%H:%M:%S)"
  if "$2"; then
    end=$(date +%s); summary+=("$(printf '%-8s ok       %4ss' "$name" $((end - start)))")
    echo "==> [$name] ok in $((end - start))s"
  else
    end=$(date +%s); summary+=("$(printf '%-8s FAILED   %4ss' "$name" $((end - start)))")
    echo "==> [$name] FAILED after $((end - start))s"
    print_summary
    exit 1
  fi
}
print_summary() {
  echo "==> stage summary"
  printf '    %s\n' "${summary[@]}"
}

stage_static() {
  cargo fmt --all -- --check
  cargo clippy --locked --workspace --all-targets -- -D warnings
}

stage_crds() {
  local tmp status=0
  tmp=$(mktemp -d)
  cargo run --locked -q -p fedstate-api --bin crdgen -- "$tmp" || status=$?
  if [ "$status" = 0 ] && ! diff -ru deploy/crds "$tmp"; then
    echo "deploy/crds/ drifted from the Rust types in api/: run 'cargo run -p fedstate-api --bin crdgen' and commit the result" >&2
    status=1
  fi
  rm -rf "$tmp"
  return "$status"
}

stage_unit() {
  cargo test --locked --workspace
}

stage_fuzz() {
  # One target at a time, each for the same time, so the stage takes targets × seconds.
  FEDSTATE_FUZZ_SECONDS="${FEDSTATE_FUZZ_SECONDS:-10}" \
    cargo test --locked -p fedstate-fuzz --test targets -- --test-threads=1 --nocapture
}

stage_e2e() {
  if [ "${FEDSTATE_SKIP_E2E:-}" = 1 ]; then
    echo "skipped: FEDSTATE_SKIP_E2E=1"
    return 0
  fi
  wait_for_go_binaries || return 1
  # Builds or reuses the pinned Go binaries (progress on stderr), runs e2e/ with FEDSTATE_E2E=1
  # (one federation per test binary, two lanes side by side), and fails if any federation
  # process is left behind.
  FEDSTATE_E2E_SOAK_SMOKE="${FEDSTATE_E2E_SOAK_SMOKE:-1}" deploy/local/e2e.sh
}

stage_bench() {
  if [ "${FEDSTATE_SKIP_E2E:-}" = 1 ]; then
    echo "skipped: FEDSTATE_SKIP_E2E=1 (the smoke benchmark needs the local federation)"
    return 0
  fi
  wait_for_go_binaries || return 1
  # Debug binaries (already built by the e2e stage): the smoke checks writes per decision and
  # that every scheduler still places, not speed.
  benches/side-by-side.sh --debug --smoke --run-dir "$PWD/.fedstate-local/bench-smoke"
}

stage_soak() {
  if [ "${FEDSTATE_SKIP_E2E:-}" = 1 ]; then
    echo "skipped: FEDSTATE_SKIP_E2E=1 (the soak test needs the local federation)"
    return 0
  fi
  wait_for_go_binaries || return 1
  benches/soak.sh --smoke --run-dir "$PWD/.fedstate-local/soak-smoke"
}

stage_mongod() {
  if [ -z "${FEDSTATE_MONGOD:-}" ]; then
    echo "skipped: no mongod (set FEDSTATE_MONGOD=/path/to/mongod to run the agent's replica-set code against a real one)"
    return 0
  fi
  # The upgrade test needs the next major's binary as well; without it, it is skipped and said so.
  local skip=()
  if [ -z "${FEDSTATE_MONGOD_NEXT:-}" ]; then
    echo "skipping an_upgrade_by_one_major_sets_the_fcv_on_real_mongod: set FEDSTATE_MONGOD_NEXT=/path/to/the-next-major/mongod to run it"
    skip=(--skip an_upgrade_by_one_major)
  fi
  cargo test --locked -p fedstate-mongo-agent --test real_mongod -- --include-ignored --test-threads=1 "${skip[@]}"
}

for s in "${stages[@]}"; do
  case "$s" in
    static | crds | unit | fuzz | e2e | bench | soak | mongod) run_stage "$s" "stage_$s" ;;
    *) echo "unknown stage '$s' (static, crds, unit, fuzz, e2e, bench, soak, mongod)" >&2; exit 2 ;;
  esac
done
print_summary
