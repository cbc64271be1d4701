#!/usr/bin/env bash
# Fuzzes the adapters' parsers (adapters/fuzz, cargo fuzz): builds every fuzz target, then runs
# each for a while from its seed corpus (the golden payloads) and fails if any crashes, panics or
# takes over 10 s on an input; libFuzzer saves that input under adapters/fuzz/artifacts/, and
# this prints the command that replays it. Installs cargo-fuzz when it is missing.
#
# Usage: scripts/fuzz.sh [SECONDS]   seconds per target: the argument, else $FUZZ_SECONDS, else 20.
# Targets run side by side, one per core ($FUZZ_JOBS to choose).
#
# cargo fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
# The adapters forbid unsafe code, so the targets are built without AddressSanitizer (faster to
# build and to run), and with 16 codegen units (cargo fuzz's default of 1 builds far slower).
# The build goes to adapters/fuzz/target, or $CARGO_TARGET_DIR: on a clean checkout it compiles
# every dependency (about 7 CPU-minutes, most of it the gRPC stack vuoro-proto brings in and the
# phone number library's regexes). Inputs the fuzzer finds go to a scratch corpus, so the seeds
# in the repository stay as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-${FUZZ_SECONDS:-20}}
jobs=${FUZZ_JOBS:-$(nproc)}
for n in "$seconds" "$jobs"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: \"$n\" is not a positive whole number" >&2; exit 2; }
done

started=$SECONDS
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked

export RUSTC_BOOTSTRAP=1
FUZZ_DIR=$PWD/adapters/fuzz
BUILD=(--fuzz-dir "$FUZZ_DIR" --sanitizer none --codegen-units 16)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo fuzz build "${BUILD[@]}"
mapfile -t targets < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no fuzz targets in $FUZZ_DIR" >&2; exit 1; }

fuzz() { # fuzz TARGET: runs it for $seconds from its seeds; its output goes to $WORK/TARGET.log
    mkdir "$WORK/$1"
    cargo fuzz run "${BUILD[@]}" "$1" "$WORK/$1" "$FUZZ_DIR/corpus/$1" -- \
        -max_total_time="$seconds" -timeout=10 >"$WORK/$1.log" 2>&1
}

failed=()
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
    batch=("${targets[@]:i:jobs}")
    pids=()
    for target in "${batch[@]}"; do
        fuzz "$target" &
        pids+=("$!")
    done
    for j in "${!batch[@]}"; do
        target=${batch[j]}
        if wait "${pids[j]}"; then
            # libFuzzer's last words: coverage, corpus and speed, then how many inputs it ran.
            printf '\n== %s (%ss): no crash\n' "$target" "$seconds"
            grep -E -e '^#[0-9]+[[:space:]]+DONE ' -e '^Done ' "$WORK/$target.log"
        else
            failed+=("$target")
        fi
    done
done

for target in "${failed[@]}"; do
    printf '\n== %s FAILED\n' "$target"
    cat "$WORK/$target.log"
    input=$(sed -n "s|^.*Test unit written to $FUZZ_DIR/||p" "$WORK/$target.log" | tail -n 1)
    if [ -n "$input" ]; then
        echo "fuzz: $target FAILED on adapters/fuzz/$input; replay it with" >&2
        echo "  cd adapters/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD[*]:2} $target $input" >&2
    else
        echo "fuzz: $target FAILED (its output is above)" >&2
    fi
done
[ "${#failed[@]}" = 0 ] || exit 1
printf '\nfuzz: %s targets, %ss each, no crash (%ss in all)\n' "${#targets[@]}" "$seconds" "$((SECONDS - started))"
