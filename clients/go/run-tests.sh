#!/usr/bin/env bash
# CI entry point for the Go client: Debian's Go toolchain and gRPC packages (installed when missing), the
# generated code and cmd/subscribe (build.sh), then the example against a real `hush serve`: it must log in,
# read a secret's version and receive the event of a write made with the hush CLI.
# HUSH_BIN: the hush binary (default: $CARGO_TARGET_DIR/debug/hush, built when missing).
set -euo pipefail
cd "$(dirname "$0")"

# golang-github-golang-protobuf-1-5-dev: grpc's codec goes through github.com/golang/protobuf, whose 1.3 (the
# default) cannot read the messages protoc-gen-go 1.28 generates.
packages=(golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev protoc-gen-go
  protoc-gen-go-grpc)
if ! dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | grep -qv "install ok installed" \
  && [ "$(dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null | wc -l)" = "${#packages[@]}" ]; then
  echo "== Debian's Go packages are installed"
else
  echo "== installing ${packages[*]} (apt-get)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
fi
if [ -z "${HUSH_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hush-target}"
  (cd ../.. && cargo build --bin hush)
  HUSH_BIN="$CARGO_TARGET_DIR/debug/hush"
fi

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== build.sh"
bash build.sh "$tmp/subscribe"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$HUSH_BIN" serve --data-dir "$tmp/data" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$tmp/data/bootstrap.json" ] && break; sleep 0.2; done
export HUSH_CONFIG_DIR="$tmp/cfg"
for _ in $(seq 50); do "$HUSH_BIN" login --server "127.0.0.1:$port" --from-file "$tmp/data/bootstrap.json" 2>/dev/null && break; sleep 0.2; done
project="$("$HUSH_BIN" projects create go-client)"
"$HUSH_BIN" secrets set DB never-printed --project "$project" 2>/dev/null
read -r client_id client_secret < <(python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); print(b["client_id"], b["client_secret"])' "$tmp/data/bootstrap.json")

echo "== cmd/subscribe against hush serve"
HUSH_CLIENT_ID="$client_id" HUSH_CLIENT_SECRET="$client_secret" \
  timeout 30 "$tmp/subscribe" "127.0.0.1:$port" "$project" DB 1 >"$tmp/out" 2>"$tmp/err" &
example=$!
for _ in $(seq 100); do grep -q "subscribed to" "$tmp/err" && break; sleep 0.1; done
"$HUSH_BIN" secrets set DB never-printed-2 --project "$project" 2>/dev/null
wait "$example"
expected=$'DB is at version 1\nsecret:update dev:/ DB v2'
if [ "$(cat "$tmp/out")" != "$expected" ]; then
  echo "unexpected output:" >&2; cat "$tmp/out" "$tmp/err" >&2; exit 1
fi
echo "ok: the Go example logged in, read a version and received the event"
