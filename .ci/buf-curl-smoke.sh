#!/usr/bin/env bash
# `buf curl` against a live server using reflection only: health, Login, CreateProject, and a server-streaming
# Subscribe that must print the event of a secret created afterwards. Then the README's curl SSE example, and
# websocat in binary mode on the WebSocket route: its frame must decode (buf convert) as a SubscribeResponse.
set -euo pipefail
cd "$(dirname "$0")/.."
hush="${HUSH_BIN:-${CARGO_TARGET_DIR:-target}/debug/hush}"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server="http://127.0.0.1:$port"
"$hush" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --heartbeat-interval 1s >"$work/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bcurl() { npx --no-install buf curl --protocol grpc --http2-prior-knowledge "$@"; }
for _ in $(seq 50); do bcurl "$server/grpc.health.v1.Health/Check" >/dev/null 2>&1 && break; sleep 0.2; done
bcurl "$server/grpc.health.v1.Health/Check" | grep -q SERVING

json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
login=$(python3 -c "import json; d = json.load(open('$work/data/bootstrap.json')); print(json.dumps({k: d[k] for k in ('client_id', 'client_secret')}))")
token=$(bcurl -d "$login" "$server/hush.v1.IdentityService/Login" | json '["accessToken"]')
auth="Authorization: Bearer $token"
project=$(bcurl -H "$auth" -d '{"name": "smoke"}' "$server/hush.v1.ProjectsService/CreateProject" | json '["project"]["id"]')

echo "-- buf curl: server-streaming Subscribe via reflection"
bcurl -H "$auth" -d "{\"project_id\": \"$project\", \"registrations\": [{\"event_type\": \"secret:*\"}]}" \
  "$server/hush.v1.EventsService/Subscribe" >"$work/stream.json" 2>&1 &
sleep 1
bcurl -H "$auth" -d "{\"project_id\": \"$project\", \"environment\": \"dev\", \"secret_path\": \"/api\", \"key\": \"SMOKE\", \"value\": \"v\"}" \
  "$server/hush.v1.SecretsService/CreateSecret" >/dev/null
for _ in $(seq 50); do grep -q '"secretKey": "SMOKE"' "$work/stream.json" && break; sleep 0.2; done
grep -q '"secretKey": "SMOKE"' "$work/stream.json" || { echo "buf curl Subscribe printed no event:"; cat "$work/stream.json"; exit 1; }
echo "ok: buf curl Subscribe printed the event"

echo "-- curl: SSE subscription (README example)"
curl -sN -X POST "$server/api/v1/events/subscribe/project-events" -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"projectId\": \"$project\", \"register\": [{\"event\": \"secret:create\", \"conditions\": {\"environmentSlug\": \"dev\", \"secretPath\": \"/**\"}}]}" \
  >"$work/sse.txt" &
sleep 1
curl -s -X POST "$server/hush.v1.SecretsService/CreateSecret" -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"projectId\": \"$project\", \"environment\": \"dev\", \"secretPath\": \"/api\", \"key\": \"SSE\", \"value\": \"v\"}" >/dev/null
for _ in $(seq 50); do grep -q '"secretKey":"SSE"' "$work/sse.txt" && break; sleep 0.2; done
grep -q '"secretKey":"SSE"' "$work/sse.txt" || { echo "curl SSE printed no event:"; cat "$work/sse.txt"; exit 1; }
echo "ok: curl SSE printed the event"

echo "-- websocat --binary: one WebSocket frame, decoded as hush.v1.SubscribeResponse"
# --no-close: stdin's end (nothing to send) must not close the socket before the frame arrives.
websocat --binary --one-message --no-close -H="$auth" \
  "ws://127.0.0.1:$port/api/v1/events/subscribe/secret:create?projectId=$project&secretPath=/ws" \
  </dev/null >"$work/frame.bin" &
ws_pid=$!
sleep 1
curl -s -X POST "$server/hush.v1.SecretsService/CreateSecret" -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"projectId\": \"$project\", \"environment\": \"dev\", \"secretPath\": \"/ws\", \"key\": \"WS\", \"value\": \"v\"}" >/dev/null
for _ in $(seq 50); do kill -0 "$ws_pid" 2>/dev/null || break; sleep 0.2; done
npx --no-install buf convert proto --type hush.v1.SubscribeResponse --from "$work/frame.bin#format=binpb" \
  --to "$work/frame.json#format=json"
grep -q '"secretKey":"WS"' "$work/frame.json" || { echo "websocat's frame is not the event:"; cat "$work/frame.json"; exit 1; }
echo "ok: websocat received a binary SubscribeResponse: $(cat "$work/frame.json")"
