#!/usr/bin/env bash
# Runs sluice's coverage-guided fuzz targets (cargo-fuzz, libFuzzer) for a
# given time each, growing the corpus kept in fuzz/corpus (which the normal
# test suite replays). Needs the nightly toolchain; installs cargo-fuzz.
#
#   scripts/fuzz.sh [seconds per target (default 600)] [target…]
#
# Targets: statement (SQL through bounds, parser, guard, planning and
# execution), ticket (Flight tickets, handles, parameters, commands,
# action bodies), trino_request (Trino requests through the router).
# A crash or a hang (libFuzzer -timeout) stops the run; its input is in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(statement ticket trino_request)
fi
export CARGO_TARGET_DIR="${SLUICE_FUZZ_TARGET_DIR:-$HOME/.cache/sluice-fuzz-target}"
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# No sanitizer: the project has no unsafe code of its own, and crashes
# (panics, aborts, stack overflows) and hangs are what is looked for.
cargo +nightly fuzz build --fuzz-dir fuzz -s none -O
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${seconds}s"
  mkdir -p "fuzz/corpus/$t"
  cargo +nightly fuzz run --fuzz-dir fuzz -s none -O "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1
done
