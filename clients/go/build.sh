#!/usr/bin/env bash
# Builds clients/go offline from Debian's packages (golang-go, golang-google-grpc-dev,
# golang-google-protobuf-dev, protoc-gen-go, protoc-gen-go-grpc): generates gen/ with buf and the two plugins,
# then builds cmd/subscribe in GOPATH mode against /usr/share/gocode (no module download). Output: $1 (default
# ./subscribe).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/subscribe}"
buf="$repo/node_modules/.bin/buf"
[ -x "$buf" ] || buf="$(command -v buf)"
rm -rf "$here/gen"
(cd "$repo" && "$buf" generate --template clients/go/buf.gen.yaml)
# GOPATH mode: the client appears as hush.example/client beside Debian's sources.
gopath="$(mktemp -d)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/hush.example"
ln -s "$here" "$gopath/src/hush.example/client"
(cd "$gopath/src/hush.example/client" && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" \
  go build -o "$out" ./cmd/subscribe)
