#!/usr/bin/env bash
# Coverage-guided fuzzing of wrenvnet's input parsers (fuzz/: libFuzzer through
# libfuzzer-sys, instrumented with LLVM's SanitizerCoverage on the stable toolchain).
#
#   bench/fuzz.sh                       every target for 10 M executions or 10 min
#   SECONDS_PER_TARGET=30 bench/fuzz.sh every target for 30 s (what scripts/test.sh runs)
#   TARGETS="frame capture" RUNS=50000000 bench/fuzz.sh
#
# Targets: frame (the dissector, and the workers' vector record path against it),
# capture (pcap/pcapng into Wren and VTTIF: `wrenvnet analyze` end to end), vadapt
# (the problem JSON into the solvers), config (the daemon's and the controller's TOML),
# api (the API's request bodies and the desired state from etcd, against a host's
# rules and links: a refused change changes nothing). Each starts from the seeds in fuzz/corpus/TARGET
# plus what earlier runs here kept (build/fuzz-corpus/TARGET). A crash, a panic, a
# unit slower than TIMEOUT_S or a unit over 2 GiB fails the run; its input is copied to
# fuzz/artifacts/ (turn it into a regression test, and add it to fuzz/corpus/TARGET).
# Prints one line per target: executions, rate, coverage (edges, features), corpus,
# verdict; OUT=DIR also writes DIR/fuzz.json.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS="${TARGETS:-frame capture vadapt config api}"
RUNS="${RUNS:-10000000}"
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-600}"
TIMEOUT_S="${TIMEOUT_S:-10}"
OUT="${OUT:-}"
TRIPLE=x86_64-unknown-linux-gnu
# The project's own target features (.cargo/config.toml, which RUSTFLAGS replaces),
# SanitizerCoverage's counters, tables and comparison tracing for libFuzzer, `cfg
# fuzzing`, and the checks of a debug build. --target keeps build scripts plain.
export RUSTFLAGS="--cfg fuzzing -Ctarget-feature=+ssse3,+sse4.1,+sse4.2,+popcnt \
 -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
(cd fuzz && cargo build -q --release --bins --target "$TRIPLE")
bin="fuzz/target/$TRIPLE/release"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
results=()
for t in $TARGETS; do
  [ -x "$bin/$t" ] || { echo "no fuzz target $t (fuzz/Cargo.toml lists them)" >&2; exit 2; }
  corpus="build/fuzz-corpus/$t"
  mkdir -p "$corpus" "$tmp/$t"
  set +e
  "$bin/$t" "$corpus" "fuzz/corpus/$t" -runs="$RUNS" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout="$TIMEOUT_S" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$tmp/$t/" >"$tmp/$t.log" 2>&1
  status=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tmp/$t.log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$tmp/$t.log" | grep -o '[0-9]*$' || echo 0)
  last=$(grep -E '^#[0-9]+' "$tmp/$t.log" | tail -1)
  cov=$(printf '%s' "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo 0)
  ft=$(printf '%s' "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo 0)
  units=$(ls "$corpus" | wc -l)
  found=$(ls "$tmp/$t" | wc -l)
  verdict=ok
  if [ "$status" != 0 ] || [ "$found" != 0 ]; then
    verdict="FAILED (exit $status)"
    rc=1
    mkdir -p fuzz/artifacts
    for a in "$tmp/$t"/*; do [ -e "$a" ] && cp "$a" "fuzz/artifacts/$t-$(basename "$a")"; done
    grep -E 'panicked|ERROR|SUMMARY' "$tmp/$t.log" | head -5 >&2 || true
  fi
  printf '%-8s %12s executions %9s/s  coverage %6s edges %7s features  corpus %6s  %s\n' \
    "$t" "$execs" "$rate" "$cov" "$ft" "$units" "$verdict"
  results+=("{\"target\":\"$t\",\"executions\":$execs,\"per_second\":$rate,\"edges\":$cov,\"features\":$ft,\"corpus\":$units,\"ok\":$([ "$verdict" = ok ] && echo true || echo false)}")
done
if [ -n "$OUT" ]; then
  mkdir -p "$OUT"
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  (IFS=,; printf '{"date":"%s","commit":"%s","targets":[%s]}\n' "$(date -u +%F)" "$rev" "${results[*]}") >"$OUT/fuzz.json"
fi
[ "$rc" = 0 ] || echo "fuzzing found failing inputs: fuzz/artifacts/" >&2
exit "$rc"
