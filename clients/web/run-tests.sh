#!/usr/bin/env bash
# CI entry point for the web client: Chromium, dependencies, generated code, build, then the browser test
# against a real `hush serve`. Works on a fresh Debian machine (as root, or with sudo for apt-get).
#
# Environment (all optional):
#   HUSH_BIN          hush binary to test against; unset = `cargo build --bin hush` here and use that
#   CARGO_TARGET_DIR  cargo's target dir when building hush (default: $HOME/.cache/hush-target, as .ci/run)
#   CHROMIUM_PATH     browser binary (default: /usr/bin/chromium, installed with apt-get when missing)
set -euo pipefail
cd "$(dirname "$0")"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2
    exit 1
  fi
  echo "== installing chromium (apt-get)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi
echo "== $("$chromium" --version 2>/dev/null || echo "$chromium")"

if [ -z "${HUSH_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hush-target}"
  echo "== cargo build --bin hush (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  (cd ../.. && cargo build --bin hush)
  export HUSH_BIN="$CARGO_TARGET_DIR/debug/hush"
fi
echo "== hush binary: $HUSH_BIN"

echo "== npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "== npm run generate (buf generate with ../../buf.gen.yaml)"
npm run --silent generate

echo "== npm run build (tsc --noEmit, esbuild -> dist/)"
npm run --silent build

echo "== node --test"
node --test tests/*.test.mjs
