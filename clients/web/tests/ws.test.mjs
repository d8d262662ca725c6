// Event subscriptions over WebSocket from the two clients people use: a browser (Chromium, which cannot set
// headers on a WebSocket, so the token rides as the subprotocol `hush.bearer.<token>` beside `hush.bearer`),
// and `wscat` with an Authorization header. Both get one CloudEvents JSON frame per write with `json=true`.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, hushBin, loadNodeClient, startHush, waitFor } from "./support/harness.mjs";

const wscat = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules", ".bin", "wscat");

describe("WebSocket subscriptions", { timeout: 120_000 }, () => {
  let tmp;
  let hush;
  let api;
  let token;
  let browser;
  let project;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "hush-ws-test-"));
    hush = await startHush(tmp, hushBin());
    const { nodeClients } = await loadNodeClient(tmp);
    api = nodeClients(hush.base, () => token);
    token = (await api.identity.login({ clientId: hush.creds.client_id, clientSecret: hush.creds.client_secret })).accessToken;
    project = (await api.projects.createProject({ name: `ws-${Date.now()}` })).project;
    const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
    assert.ok(existsSync(chromiumPath), `Chromium not found at ${chromiumPath}`);
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await hush?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const wsUrl = (eventType, query) => `${hush.base.replace(/^http/, "ws")}/api/v1/events/subscribe/${eventType}?${query}`;
  const write = (key) =>
    api.secrets.createSecret({ projectId: project.id, environment: "dev", secretPath: "/ws", key, value: "never-in-a-frame" });

  it("a browser subscribes with the token as a subprotocol", async () => {
    const page = await browser.newPage();
    await page.goto(`${hush.base}/`);
    const url = wsUrl("secret:*", `projectId=${project.id}&json=true`);
    const protocol = await page.evaluate(
      ([url, token]) =>
        new Promise((resolve, reject) => {
          const socket = new WebSocket(url, ["hush.bearer", `hush.bearer.${token}`]);
          window.frames_ = [];
          socket.onmessage = (m) => window.frames_.push(m.data);
          socket.onopen = () => resolve(socket.protocol);
          socket.onerror = () => reject(new Error("the WebSocket failed"));
        }),
      [url, token],
    );
    assert.equal(protocol, "hush.bearer", "the server selects hush.bearer, never echoing the token");
    await write("FROM_BROWSER_TEST");
    const frame = await waitFor("a frame in the browser", () => page.evaluate(() => window.frames_[0]), 5_000);
    const event = JSON.parse(frame);
    assert.equal(event.specversion, "1.0");
    assert.equal(event.data.payload.secrets[0].secretKey, "FROM_BROWSER_TEST");
    assert.equal(event.data.payload.secrets[0].version, 1);
    assert.ok(!frame.includes("never-in-a-frame"), "names, never values");
    await page.close();
  });

  it("wscat with an Authorization header prints one CloudEvents line per write", async () => {
    // wscat is interactive and prints only to a terminal: util-linux `script` gives it one.
    const command = [wscat, "-H", `'Authorization: Bearer ${token}'`, "-c", `'${wsUrl("secret:create", `projectId=${project.id}&json=true`)}'`];
    const child = spawn("script", ["-qec", command.join(" "), "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    try {
      await waitFor("wscat connected", () => out.includes("Connected"), 10_000);
      await write("FROM_WSCAT_1");
      await write("FROM_WSCAT_2");
      const lines = await waitFor("two frames", () => {
        const frames = out.split("\n").filter((l) => l.includes("specversion"));
        return frames.length >= 2 && frames;
      }, 5_000);
      // Each frame is printed as `< {json}` amid the terminal's prompt redraws.
      const keys = lines.map((line) => {
        const text = line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
        return JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1)).data.payload.secrets[0].secretKey;
      });
      assert.deepEqual(keys, ["FROM_WSCAT_1", "FROM_WSCAT_2"]);
    } finally {
      child.kill();
    }
  });
});
