// The hush.v1 services used by the web client, and a helper to make typed clients for them.
// Shared by the page (grpc-web transport) and the tests (gRPC transport from node).
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { AuditLogsService } from "./gen/hush/v1/audit_logs_pb";
import { AuditStreamsService } from "./gen/hush/v1/audit_streams_pb";
import { EventsService } from "./gen/hush/v1/events_pb";
import { IdentityService } from "./gen/hush/v1/identity_pb";
import { ProjectsService } from "./gen/hush/v1/projects_pb";
import { SecretsService } from "./gen/hush/v1/secrets_pb";

export { AuditLogsService, AuditStreamsService, EventsService, IdentityService, ProjectsService, SecretsService };

export interface HushClients {
  identity: Client<typeof IdentityService>;
  projects: Client<typeof ProjectsService>;
  secrets: Client<typeof SecretsService>;
  events: Client<typeof EventsService>;
  audit: Client<typeof AuditLogsService>;
  streams: Client<typeof AuditStreamsService>;
}

export function hushClients(transport: Transport): HushClients {
  return {
    identity: createClient(IdentityService, transport),
    projects: createClient(ProjectsService, transport),
    secrets: createClient(SecretsService, transport),
    events: createClient(EventsService, transport),
    audit: createClient(AuditLogsService, transport),
    streams: createClient(AuditStreamsService, transport),
  };
}

/** Adds `authorization: Bearer <token>` to every call while `token()` returns one. */
export function bearerAuth(token: () => string | undefined): Interceptor {
  return (next) => (req) => {
    const t = token();
    if (t) req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
}
