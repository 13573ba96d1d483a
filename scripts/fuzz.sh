#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each (default 30),
# starting from the corpus kept in fuzz/corpus/<target>. New inputs go to a scratch
# directory unless --keep is given, in which case they join the kept corpus (then minimize
# it with `cargo +nightly fuzz cmin <target>` before committing). A crash stops the run with
# the input saved under fuzz/artifacts/<target>/ and a non-zero exit.
#   scripts/fuzz.sh [--keep] [SECONDS] [TARGET...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

keep=0
if [ "${1:-}" = "--keep" ]; then keep=1; shift; fi
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if [ $keep = 1 ]; then dirs=("corpus/$t"); else dirs=("$scratch/$t" "corpus/$t"); mkdir -p "$scratch/$t"; fi
  echo "fuzz: $t for ${seconds}s from $(find "corpus/$t" -type f | wc -l) kept inputs" >&2
  # -rss_limit_mb: the parsers must stay small whatever the input.
  rc=0
  cargo +nightly fuzz run "$t" "${dirs[@]}" -- -max_total_time="$seconds" -rss_limit_mb=512 \
    -print_final_stats=1 >"$scratch/$t.log" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$scratch/$t.log" >&2 || true
  if [ $rc != 0 ]; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "fuzz: $t FAILED (exit $rc)" >&2
    exit 1
  fi
done
