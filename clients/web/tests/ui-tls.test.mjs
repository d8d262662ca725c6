// The web page over https: `hush serve --tls-self-signed` serving dist/ at /ui/, Chromium trusting exactly that
// certificate's key (--ignore-certificate-errors-spki-list, no blanket bypass), grpc-web unary calls and the live
// events stream over TLS, and node making changes over gRPC with the certificate as CA.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, distDir, freePort, hushBin, loadNodeClient, waitFor } from "./support/harness.mjs";

describe("web UI against hush serve --tls-self-signed", { timeout: 120_000 }, () => {
  let tmp;
  let server;
  let serverLog = "";
  let browser;

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (server && server.exitCode == null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await exited;
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  let base;
  let ca;
  let creds;
  before(async () => {
    assert.ok(existsSync(path.join(distDir, "index.html")), "dist/ is missing: run `npm run build` first");
    tmp = await mkdtemp(path.join(os.tmpdir(), "hush-web-tls-test-"));
    const port = await freePort();
    base = `https://localhost:${port}`;
    const dataDir = path.join(tmp, "data");
    const args = ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--ui-dir", distDir];
    server = spawn(hushBin(), [...args, "--tls-self-signed"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HUSH_LOG: "info", NO_COLOR: "1" },
    });
    server.stderr.on("data", (chunk) => (serverLog += chunk));
    creds = await waitFor(
      "bootstrap.json",
      async () => JSON.parse(await readFile(path.join(dataDir, "bootstrap.json"), "utf8")),
      30_000,
      server,
    );
    await waitFor("listening", async () => serverLog.includes("hush is listening"), 30_000, server);
    ca = await readFile(path.join(dataDir, "tls-self-signed.crt"), "utf8");
  });

  it("serves the page, grpc-web calls and live events over https", async () => {
    const { nodeClients } = await loadNodeClient(tmp);
    let token;
    const api = nodeClients(base, () => token, ca);
    token = (await api.identity.login({ clientId: creds.client_id, clientSecret: creds.client_secret })).accessToken;
    const project = (await api.projects.createProject({ name: `web-tls-${Date.now()}` })).project;
    const secret = { projectId: project.id, environment: "dev", secretPath: "/", key: "TLS_KEY", value: "one" };
    await api.secrets.createSecret(secret);

    await assert.rejects(
      nodeClients(base.replace("https:", "http:"), () => token).identity.login({ clientId: "x", clientSecret: "y" }),
      "a cleartext client fails against the https port",
    );

    const spki = new X509Certificate(ca).publicKey.export({ type: "spki", format: "der" });
    const pin = createHash("sha256").update(spki).digest("base64");
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      headless: true,
      args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${pin}`],
    });
    const page = await browser.newPage();
    try {
      await page.goto(`${base}/ui/`);
      assert.equal(await page.getByTestId("server-url").inputValue(), base, "server defaults to the https origin");
      await page.getByTestId("client-id").fill(creds.client_id);
      await page.getByTestId("client-secret").fill(creds.client_secret);
      await page.getByTestId("login-button").click();
      await page.getByTestId("app-view").waitFor({ state: "visible", timeout: 10_000 });
      await page.waitForSelector(`[data-testid=project-select] option[value="${project.id}"]`, { state: "attached" });
      await page.getByTestId("project-select").selectOption(project.id);
      await page.waitForSelector(`[data-testid=env-select] option[value="dev"]`, { state: "attached" });
      await page.getByTestId("env-select").selectOption("dev");
      await page.getByTestId("path-input").fill("/");
      await page.getByTestId("load-secrets").click();
      const row = page.locator(`[data-testid=secret-row][data-key="TLS_KEY"]`);
      await row.waitFor({ timeout: 10_000 });
      assert.equal(await row.getByTestId("secret-value").getAttribute("data-masked"), "true", "values start masked");
      await row.getByTestId("secret-reveal").click();
      await page.waitForFunction(() => document.querySelector('[data-key="TLS_KEY"] [data-testid=secret-value]')?.textContent === "one");
      await page.waitForSelector(`[data-testid=events-status][data-state="live"]`, { timeout: 10_000 });
      await api.secrets.updateSecret({ ...secret, value: "two" });
      await page
        .locator(`[data-testid=event-row][data-key="TLS_KEY"][data-type="secret:update"]`)
        .waitFor({ timeout: 5_000 });
    } catch (err) {
      console.error(`server log (tail):\n${serverLog.slice(-4000)}`);
      throw err;
    }
  });
});
