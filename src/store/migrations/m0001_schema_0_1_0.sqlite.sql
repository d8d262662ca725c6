-- Migration 1 (SQLite): the schema of hush 0.1.0, exactly as its six development migrations made it on a
-- fresh database, seed rows included. Released: never edit this file; change the schema in a new migration
-- (src/store/migrations/mod.rs says how).

CREATE TABLE "orgs" (
    "id" varchar NOT NULL PRIMARY KEY,
    "name" varchar NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL
);

CREATE TABLE "identities" (
    "id" varchar NOT NULL PRIMARY KEY,
    "org_id" varchar NOT NULL,
    "name" varchar NOT NULL,
    "client_id" varchar NOT NULL UNIQUE,
    "org_role" varchar,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("org_id") REFERENCES "orgs" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-identities-org_id" ON "identities" ("org_id");

CREATE TABLE "client_secrets" (
    "id" varchar NOT NULL PRIMARY KEY,
    "identity_id" varchar NOT NULL,
    "secret_hash" varchar NOT NULL UNIQUE,
    "prefix" varchar NOT NULL,
    "description" varchar NOT NULL,
    "expires_at" timestamp_with_timezone_text,
    "max_uses" integer NOT NULL,
    "uses" integer NOT NULL,
    "revoked_at" timestamp_with_timezone_text,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("identity_id") REFERENCES "identities" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-client_secrets-identity_id" ON "client_secrets" ("identity_id");

CREATE TABLE "access_tokens" (
    "id" varchar NOT NULL PRIMARY KEY,
    "identity_id" varchar NOT NULL,
    "token_hash" varchar NOT NULL UNIQUE,
    "client_secret_id" varchar,
    "expires_at" timestamp_with_timezone_text NOT NULL,
    "revoked_at" timestamp_with_timezone_text,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("identity_id") REFERENCES "identities" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-access_tokens-identity_id" ON "access_tokens" ("identity_id");
CREATE INDEX "idx-access_tokens-client_secret_id" ON "access_tokens" ("client_secret_id");

CREATE TABLE "projects" (
    "id" varchar NOT NULL PRIMARY KEY,
    "org_id" varchar NOT NULL,
    "name" varchar NOT NULL,
    "sealed_data_key" varbinary_blob NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("org_id") REFERENCES "orgs" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-projects-org_id" ON "projects" ("org_id");

CREATE TABLE "environments" (
    "id" varchar NOT NULL PRIMARY KEY,
    "project_id" varchar NOT NULL,
    "slug" varchar NOT NULL,
    "name" varchar NOT NULL,
    "position" integer NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "idx-environments-environments_project_slug" ON "environments" ("project_id", "slug");

CREATE TABLE "folders" (
    "id" varchar NOT NULL PRIMARY KEY,
    "environment_id" varchar NOT NULL,
    "path" varchar NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("environment_id") REFERENCES "environments" ("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "idx-folders-folders_environment_path" ON "folders" ("environment_id", "path");

CREATE TABLE "secrets" (
    "id" varchar NOT NULL PRIMARY KEY,
    "environment_id" varchar NOT NULL,
    "path" varchar NOT NULL,
    "key" varchar NOT NULL,
    "version" integer NOT NULL,
    "sealed_value" varbinary_blob NOT NULL,
    "comment" varchar NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    "updated_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("environment_id") REFERENCES "environments" ("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "idx-secrets-secrets_environment_path_key" ON "secrets" ("environment_id", "path", "key");

CREATE TABLE "secret_versions" (
    "id" varchar NOT NULL PRIMARY KEY,
    "secret_id" varchar NOT NULL,
    "version" integer NOT NULL,
    "sealed_value" varbinary_blob NOT NULL,
    "comment" varchar NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("secret_id") REFERENCES "secrets" ("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "idx-secret_versions-secret_versions_secret_version" ON "secret_versions" ("secret_id", "version");

CREATE TABLE "secret_imports" (
    "id" varchar NOT NULL PRIMARY KEY,
    "environment_id" varchar NOT NULL,
    "path" varchar NOT NULL,
    "import_environment_id" varchar NOT NULL,
    "import_path" varchar NOT NULL,
    "position" integer NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("environment_id") REFERENCES "environments" ("id") ON DELETE CASCADE,
    FOREIGN KEY ("import_environment_id") REFERENCES "environments" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-secret_imports-environment_id" ON "secret_imports" ("environment_id");

CREATE TABLE "roles" (
    "id" varchar NOT NULL PRIMARY KEY,
    "org_id" varchar NOT NULL,
    "name" varchar NOT NULL,
    "description" varchar NOT NULL,
    "policies" json_text NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("org_id") REFERENCES "orgs" ("id") ON DELETE CASCADE
);
CREATE UNIQUE INDEX "idx-roles-roles_org_name" ON "roles" ("org_id", "name");

CREATE TABLE "project_memberships" (
    "id" varchar NOT NULL PRIMARY KEY,
    "project_id" varchar NOT NULL,
    "identity_id" varchar NOT NULL,
    "role_id" varchar NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("project_id") REFERENCES "projects" ("id") ON DELETE CASCADE,
    FOREIGN KEY ("identity_id") REFERENCES "identities" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-project_memberships-identity_id" ON "project_memberships" ("identity_id");
CREATE UNIQUE INDEX "idx-project_memberships-project_memberships_project_identity" ON "project_memberships" ("project_id", "identity_id");

CREATE TABLE "authz_version" (
    "id" integer NOT NULL PRIMARY KEY,
    "version" integer NOT NULL
);
INSERT INTO "authz_version" ("id", "version") VALUES (1, 0);

CREATE TABLE "events" (
    "seq" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "id" varchar NOT NULL UNIQUE,
    "project_id" varchar NOT NULL,
    "event_type" varchar NOT NULL,
    "payload" json_text NOT NULL,
    "actor" json_text NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL
);
CREATE INDEX "idx-events-project_id" ON "events" ("project_id");
CREATE INDEX "idx-events-created_at" ON "events" ("created_at");

CREATE TABLE "outbox_state" (
    "id" integer NOT NULL PRIMARY KEY,
    "pruned_through" integer NOT NULL
);
INSERT INTO "outbox_state" ("id", "pruned_through") VALUES (1, 0);

CREATE TABLE "audit_logs" (
    "seq" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "id" varchar NOT NULL UNIQUE,
    "actor_type" varchar NOT NULL,
    "actor_id" varchar NOT NULL,
    "actor_name" varchar NOT NULL,
    "ip_address" varchar NOT NULL,
    "user_agent" varchar NOT NULL,
    "user_agent_type" varchar NOT NULL,
    "event_type" varchar NOT NULL,
    "event_metadata" json_text NOT NULL,
    "org_id" varchar NOT NULL,
    "project_id" varchar,
    "created_at" timestamp_with_timezone_text NOT NULL,
    "expires_at" timestamp_with_timezone_text NOT NULL
);
CREATE INDEX "idx-audit_logs-actor_id" ON "audit_logs" ("actor_id");
CREATE INDEX "idx-audit_logs-event_type" ON "audit_logs" ("event_type");
CREATE INDEX "idx-audit_logs-org_id" ON "audit_logs" ("org_id");
CREATE INDEX "idx-audit_logs-project_id" ON "audit_logs" ("project_id");
CREATE INDEX "idx-audit_logs-created_at" ON "audit_logs" ("created_at");
CREATE INDEX "idx-audit_logs-expires_at" ON "audit_logs" ("expires_at");

CREATE TABLE "audit_streams" (
    "id" varchar NOT NULL PRIMARY KEY,
    "org_id" varchar NOT NULL,
    "name" varchar NOT NULL,
    "provider" varchar NOT NULL,
    "sealed_config" varbinary_blob NOT NULL,
    "created_at" timestamp_with_timezone_text NOT NULL,
    "updated_at" timestamp_with_timezone_text NOT NULL,
    FOREIGN KEY ("org_id") REFERENCES "orgs" ("id") ON DELETE CASCADE
);
CREATE INDEX "idx-audit_streams-org_id" ON "audit_streams" ("org_id");

CREATE TABLE "audit_stream_states" (
    "stream_id" varchar NOT NULL PRIMARY KEY,
    "cursor" integer NOT NULL,
    "lease_owner" varchar,
    "lease_expires_at" timestamp_with_timezone_text,
    "backfill_from" integer NOT NULL,
    "backfill_to" integer NOT NULL,
    "delivered_events" integer NOT NULL,
    "dropped_batches" integer NOT NULL,
    "dropped_events" integer NOT NULL,
    "attempts" integer NOT NULL,
    "retries" integer NOT NULL,
    "last_success_at" timestamp_with_timezone_text,
    "last_error" varchar NOT NULL,
    "last_error_at" timestamp_with_timezone_text,
    FOREIGN KEY ("stream_id") REFERENCES "audit_streams" ("id") ON DELETE CASCADE
);
-- Identity names unique per org: 0.1.0's last development step (m0006_identity_hygiene).
CREATE UNIQUE INDEX "idx-identities-org_id-name" ON "identities" ("org_id", "name");
