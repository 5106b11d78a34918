#!/usr/bin/env bash
# Builds this example as a user would, outside the repository: copies it to a temporary
# directory, points its path dependencies at this checkout, builds it (sharing the checkout's
# target directory and lock file, so dependencies are not rebuilt), trains Chain-v0, runs the
# env checker, and checks that the repository's own `rl` plots the run and says which program
# can evaluate it. Used by .ci/run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -r "$repo/experiments/out-of-tree/Cargo.toml" "$repo/experiments/out-of-tree/src" \
    "$repo/experiments/out-of-tree/chain.yaml" "$work/"
sed -i "s|\"\.\./\.\./|\"$repo/|g" "$work/Cargo.toml"
cp "$repo/Cargo.lock" "$work/"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

cd "$work"
cargo build
bin="$CARGO_TARGET_DIR/debug/chain-env"
"$bin" check-env Chain-v0
"$bin" train --config chain.yaml --quiet --output "$work/run" | tee "$work/train.txt"
# Chain-v0's best return is 0.95 to 1.0 (1.0 minus 0.01 per step before the end).
awk '/final evaluation/ { if ($4 < 0.9) { print "Chain-v0 did not learn: " $4; exit 1 } }' "$work/train.txt"
"$bin" evaluate --checkpoint "$work/run" --episodes 3

cd "$repo"
cargo build --bin rl
"$CARGO_TARGET_DIR/debug/rl" plot "$work/run"
if "$CARGO_TARGET_DIR/debug/rl" evaluate --checkpoint "$work/run" 2> "$work/evaluate.err"; then
    echo "rl evaluate should refuse a run of an env it does not have" >&2
    exit 1
fi
grep -q "env Chain-v0 is not registered in this program" "$work/evaluate.err"
echo "out-of-tree crate: built, checked, trained, plotted"
