// Log in, read a secret, and follow a project's secret events over native gRPC (HTTP/2), resuming after the
// last cursor whenever the stream ends — the three steps of clients/README.md.
//
//   HUSH_CLIENT_ID=… HUSH_CLIENT_SECRET=… node subscribe.mjs http://127.0.0.1:8080 PROJECT_ID [KEY] [EVENTS]
//
// KEY (optional) is read from dev:/ first; with EVENTS it exits after that many events (as CI runs it).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventsService } from "./gen/hush/v1/events_pb.js";
import { IdentityService } from "./gen/hush/v1/identity_pb.js";
import { SecretsService } from "./gen/hush/v1/secrets_pb.js";

const [server, projectId, key, events] = process.argv.slice(2);
if (!server || !projectId) {
  console.error("usage: node subscribe.mjs SERVER PROJECT_ID [KEY] [EVENTS]");
  process.exit(2);
}
let left = events ? Number(events) : Infinity;

let token;
const transport = createGrpcTransport({
  baseUrl: server,
  interceptors: [(next) => (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  }],
});

// 1. Log in with a machine identity.
const identity = createClient(IdentityService, transport);
token = (await identity.login({ clientId: process.env.HUSH_CLIENT_ID, clientSecret: process.env.HUSH_CLIENT_SECRET }))
  .accessToken;

// 2. Read a secret.
if (key) {
  const { secret } = await createClient(SecretsService, transport).getSecret({ projectId, environment: "dev", secretPath: "/", key });
  console.log(`${key} is at version ${secret?.version}`); // the value is the program's to use, not to print
}

// 3. Subscribe, resuming after the last event seen whenever the stream ends.
const eventsClient = createClient(EventsService, transport);
let resumeAfter;
for (;;) {
  try {
    const after = resumeAfter ?? "-";
    const stream = eventsClient.subscribe({ projectId, registrations: [{ eventType: "secret:*" }], resumeAfter }, {
      // The server answers with headers once it registered the stream: events written from then on arrive.
      // (The call itself only starts when the stream is read.)
      onHeader: () => console.error(`subscribed to ${projectId} (after cursor ${after})`),
    });
    for await (const res of stream) {
      if (res.message.case === "event") {
        const event = res.message.value;
        for (const s of event.secrets) {
          console.log(`${event.type} ${s.environment}:${s.secretPath} ${s.secretKey} ${s.version === undefined ? "deleted" : `v${s.version}`}`);
        }
        resumeAfter = event.cursor;
        if (--left === 0) process.exit(0);
      } else if (res.message.case === "lagged") {
        resumeAfter = res.message.value.resumeAfter;
      }
    }
  } catch (err) {
    const code = ConnectError.from(err).code;
    // A refusal is final; a dropped connection is retried.
    if (code !== Code.Unavailable && code !== Code.Unknown && code !== Code.Internal) throw err;
  }
  await new Promise((r) => setTimeout(r, 500));
}
