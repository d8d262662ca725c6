// The Node.js example against a real `hush serve`: it logs in, reads a secret, subscribes over native gRPC and
// prints the event a write makes, with its version.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { IdentityService } from "../gen/hush/v1/identity_pb.js";
import { ProjectsService } from "../gen/hush/v1/projects_pb.js";
import { SecretsService } from "../gen/hush/v1/secrets_pb.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const hushBin = process.env.HUSH_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(here, "../../../target"), "debug", "hush");

const freePort = () =>
  new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

async function until(what, fn, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("the example receives an event over native gRPC", { timeout: 60_000 }, async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "hush-node-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(hushBin, ["serve", "--data-dir", path.join(tmp, "data"), "--listen", `127.0.0.1:${port}`], { stdio: "ignore" });
  let example;
  try {
    const creds = await until("bootstrap.json", async () => JSON.parse(await readFile(path.join(tmp, "data", "bootstrap.json"), "utf8")));
    let token;
    const transport = createGrpcTransport({ baseUrl: base, interceptors: [(next) => (req) => {
      if (token) req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    }] });
    token = await until("login", async () =>
      (await createClient(IdentityService, transport).login({ clientId: creds.client_id, clientSecret: creds.client_secret })).accessToken);
    const project = (await createClient(ProjectsService, transport).createProject({ name: "node" })).project;
    const secrets = createClient(SecretsService, transport);
    await secrets.createSecret({ projectId: project.id, environment: "dev", secretPath: "/", key: "DB", value: "never-printed" });

    const env = { ...process.env, HUSH_CLIENT_ID: creds.client_id, HUSH_CLIENT_SECRET: creds.client_secret };
    example = spawn(process.execPath, [path.join(here, "../subscribe.mjs"), base, project.id, "DB", "1"], { env });
    let out = "";
    let err = "";
    example.stdout.on("data", (c) => (out += c));
    example.stderr.on("data", (c) => (err += c));
    await until("subscribed", () => err.includes("subscribed to"));
    await secrets.updateSecret({ projectId: project.id, environment: "dev", secretPath: "/", key: "DB", value: "never-printed-2" });
    const code = await new Promise((r) => example.on("exit", r));
    assert.equal(code, 0, err);
    assert.equal(out, "DB is at version 1\nsecret:update dev:/ DB v2\n");
  } finally {
    example?.kill();
    server.kill();
    await rm(tmp, { recursive: true, force: true });
  }
});
