#!/usr/bin/env bash
# CI entry point for the Python client: venv at clients/python/.venv (created if missing), the package with its
# test extras, the generated modules, then pytest against a real `hush serve`.
#
# Environment:
#   HUSH_BIN          the hush binary to test against. Unset: `cargo build --bin hush` is run (a no-op when up to
#                     date; CARGO_TARGET_DIR is honoured) and the tests use $CARGO_TARGET_DIR/debug/hush, else
#                     <repo>/target/debug/hush.
#   PYTHON            interpreter used to create the venv (default python3; 3.9+).
#   PYTEST_ADDOPTS    extra pytest options, as usual.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "== creating $venv"
  rm -rf "$venv"
  if ! "${PYTHON:-python3}" -m venv "$venv"; then
    # Debian's python3 without python3-venv has no ensurepip: a venv without pip, then bootstrap pip into it.
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv --without-pip "$venv"
    "${PYTHON:-python3}" -m pip --python "$venv/bin/python" install --quiet pip \
      || { echo "run-tests.sh: cannot create a venv; install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
  fi
fi
py="$venv/bin/python"

echo "== pip install -e '.[test]'"
"$py" -m pip install --quiet --disable-pip-version-check -e "$here[test]"

echo "== generate.sh"
PYTHON="$py" bash "$here/generate.sh"

if [[ -z "${HUSH_BIN:-}" ]]; then
  echo "== cargo build --bin hush"
  (cd "$repo" && cargo build --quiet --bin hush)
fi

echo "== pytest"
exec "$py" -m pytest -q -p no:cacheprovider "$@"
