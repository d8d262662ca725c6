#!/usr/bin/env bash
# CI entry point for the Node.js client: dependencies, generated code, then the example against a real
# `hush serve`. HUSH_BIN: the hush binary (default: $CARGO_TARGET_DIR/debug/hush, built when missing).
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${HUSH_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hush-target}"
  (cd ../.. && cargo build --bin hush)
  export HUSH_BIN="$CARGO_TARGET_DIR/debug/hush"
fi
echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "== npm run generate"
npm run --silent generate
echo "== node --test"
node --test tests/*.test.mjs
