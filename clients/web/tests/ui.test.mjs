// End-to-end test of the web page: a real `hush serve` serving dist/ at /ui/, Debian's Chromium driven by
// playwright-core, and node making changes over gRPC with the generated client.
//
// Needs: `npm run generate && npm run build` first (dist/), the hush binary (HUSH_BIN, else
// $CARGO_TARGET_DIR/debug/hush, else ../../target/debug/hush) and Chromium (CHROMIUM_PATH, default
// /usr/bin/chromium). On failure a screenshot is written to a temp file and its path printed;
// UI_SCREENSHOT=/some/file.png also keeps one of a passing run.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, distDir, freePort, hushBin, loadNodeClient, waitFor } from "./support/harness.mjs";

describe("web UI against hush serve", { timeout: 120_000 }, () => {
  let tmp;
  let server;
  let serverLog = "";
  let base;
  let creds;
  let api;
  let token;
  let browser;
  let page;
  const pageLog = [];

  before(async () => {
    assert.ok(existsSync(path.join(distDir, "index.html")), "dist/ is missing: run `npm run build` first");
    const bin = hushBin();
    assert.ok(existsSync(bin), `hush binary not found at ${bin} (build it with cargo build, or set HUSH_BIN)`);
    const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
    assert.ok(existsSync(chromiumPath), `Chromium not found at ${chromiumPath} (apt-get install chromium)`);

    tmp = await mkdtemp(path.join(os.tmpdir(), "hush-web-test-"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const dataDir = path.join(tmp, "data");
    server = spawn(bin, ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--ui-dir", distDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HUSH_LOG: process.env.HUSH_LOG ?? "info", NO_COLOR: "1" },
    });
    const collect = (chunk) => {
      serverLog += chunk;
      if (serverLog.length > 200_000) serverLog = serverLog.slice(-100_000);
    };
    server.stdout.on("data", collect);
    server.stderr.on("data", collect);

    creds = await waitFor(
      "bootstrap.json",
      async () => JSON.parse(await readFile(path.join(dataDir, "bootstrap.json"), "utf8")),
      30_000,
      server,
    );
    await waitFor("the /ui/ page", async () => (await fetch(`${base}/ui/`)).ok, 30_000, server);

    const { nodeClients } = await loadNodeClient(tmp);
    api = nodeClients(base, () => token);
    token = (await api.identity.login({ clientId: creds.client_id, clientSecret: creds.client_secret })).accessToken;

    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    page.on("console", (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => pageLog.push(`pageerror: ${e.message}`));
    page.on("requestfailed", (r) => pageLog.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (server && server.exitCode == null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      const timer = setTimeout(() => server.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Runs a step; on failure saves a screenshot and prints it with the page's and server's logs. */
  async function step(name, fn) {
    try {
      await fn();
    } catch (err) {
      const shot = path.join(os.tmpdir(), `hush-web-failure-${Date.now()}.png`);
      await page?.screenshot({ path: shot, fullPage: true }).then(
        () => console.error(`[${name}] failed; screenshot: ${shot}`),
        (e) => console.error(`[${name}] failed; no screenshot: ${e.message}`),
      );
      console.error(`page log:\n${pageLog.join("\n") || "(empty)"}`);
      console.error(`server log (tail):\n${serverLog.slice(-4000)}`);
      throw err;
    }
  }

  it("logs in, lists secrets and shows live events", async () => {
    const project = (await api.projects.createProject({ name: `web-ui-${Date.now()}` })).project;
    assert.ok(project?.id, "CreateProject returned no project");
    const env = "dev";
    await api.secrets.createSecret({
      projectId: project.id,
      environment: env,
      secretPath: "/",
      key: "DB_PASSWORD",
      value: "first-value",
    });

    await step("open page", async () => {
      await page.goto(`${base}/ui/`);
      await page.getByTestId("login-form").waitFor();
      assert.equal(await page.getByTestId("server-url").inputValue(), base, "server defaults to the page's origin");
    });

    await step("wrong secret is refused", async () => {
      await page.getByTestId("client-id").fill(creds.client_id);
      await page.getByTestId("client-secret").fill("not-the-secret");
      await page.getByTestId("login-button").click();
      await page.getByTestId("login-error").waitFor({ state: "visible", timeout: 10_000 });
      assert.match(await page.getByTestId("login-error").textContent(), /Unauthenticated/i);
    });

    await step("login", async () => {
      await page.getByTestId("client-secret").fill(creds.client_secret);
      await page.getByTestId("login-button").click();
      await page.getByTestId("app-view").waitFor({ state: "visible", timeout: 10_000 });
      assert.ok(await page.getByTestId("login-view").isHidden());
    });

    await step("select project, environment and path; see the secret", async () => {
      await page.waitForSelector(`[data-testid=project-select] option[value="${project.id}"]`, { state: "attached" });
      await page.getByTestId("project-select").selectOption(project.id);
      await page.waitForSelector(`[data-testid=env-select] option[value="${env}"]`, { state: "attached" });
      await page.getByTestId("env-select").selectOption(env);
      await page.getByTestId("path-input").fill("/");
      await page.getByTestId("load-secrets").click();
      const row = page.locator(`[data-testid=secret-row][data-key="DB_PASSWORD"]`);
      await row.waitFor({ timeout: 10_000 });
      assert.equal(await row.getByTestId("secret-key").textContent(), "DB_PASSWORD");
      assert.equal(await row.getByTestId("secret-value").getAttribute("data-masked"), "true", "values start masked");
      assert.ok(!(await page.content()).includes("first-value"), "no value is in the page before a reveal");
      await row.getByTestId("secret-reveal").click();
      await page.waitForFunction(
        () => document.querySelector('[data-key="DB_PASSWORD"] [data-testid=secret-value]')?.textContent === "first-value",
      );
      assert.equal(await row.getByTestId("secret-version").textContent(), "1");
    });

    await step("events stream is live", async () => {
      await page.waitForSelector(`[data-testid=events-status][data-state="live"]`, { timeout: 10_000 });
    });

    await step("an update made over gRPC shows up as an event", async () => {
      await api.secrets.updateSecret({
        projectId: project.id,
        environment: env,
        secretPath: "/",
        key: "DB_PASSWORD",
        value: "second-value",
      });
      const ev = page.locator(`[data-testid=event-row][data-key="DB_PASSWORD"][data-type="secret:update"]`);
      await ev.waitFor({ timeout: 5_000 });
      assert.equal(await ev.getByTestId("event-type").textContent(), "secret:update");
      assert.equal(await ev.getByTestId("event-env").textContent(), env);
      assert.equal(await ev.getByTestId("event-path").textContent(), "/");
      assert.equal(await ev.getByTestId("event-key").textContent(), "DB_PASSWORD");
      const cursor = await ev.getByTestId("event-cursor").textContent();
      assert.ok(cursor && cursor.trim() !== "", "event has a cursor");
      assert.equal(await ev.getAttribute("data-cursor"), cursor);

      // The folder on screen was touched, so the list reloads with the new version.
      const row = page.locator(`[data-testid=secret-row][data-key="DB_PASSWORD"]`);
      await page.waitForFunction(
        () =>
          document.querySelector(`[data-testid=secret-row][data-key="DB_PASSWORD"] [data-testid=secret-version]`)
            ?.textContent === "2",
        null,
        { timeout: 5_000 },
      );
      await row.getByTestId("secret-reveal").click();
      await page.waitForFunction(
        () => document.querySelector('[data-key="DB_PASSWORD"] [data-testid=secret-value]')?.textContent === "second-value",
      );
    });

    await step("events elsewhere in the project show up too, newest first", async () => {
      await api.secrets.createSecret({
        projectId: project.id,
        environment: "prod",
        secretPath: "/api",
        key: "API_KEY",
        value: "k",
      });
      const ev = page.locator(`[data-testid=event-row][data-key="API_KEY"][data-type="secret:create"]`);
      await ev.waitFor({ timeout: 5_000 });
      assert.equal(await ev.getByTestId("event-env").textContent(), "prod");
      assert.equal(await ev.getByTestId("event-path").textContent(), "/api");
      const first = page.getByTestId("event-row").first();
      assert.equal(await first.getAttribute("data-key"), "API_KEY");
      const cursors = await page.getByTestId("event-cursor").allTextContents();
      assert.equal(cursors.length, 2);
      assert.notEqual(cursors[0], cursors[1]);
    });

    await step("a reload of the folder keeps a revealed value revealed", async () => {
      // DB_PASSWORD was revealed above; a change to another key of the folder reloads the list.
      await api.secrets.createSecret({ projectId: project.id, environment: env, secretPath: "/", key: "OTHER", value: "o" });
      await page.locator(`[data-testid=secret-row][data-key="OTHER"]`).waitFor({ timeout: 5_000 });
      const value = page.locator(`[data-testid=secret-row][data-key="DB_PASSWORD"] [data-testid=secret-value]`);
      assert.equal(await value.textContent(), "second-value");
      assert.equal(await value.getAttribute("data-masked"), "false");
      assert.equal(await page.locator(`[data-testid=secret-row][data-key="OTHER"] [data-testid=secret-value]`)
        .getAttribute("data-masked"), "true", "only what was revealed is shown");
    });

    await step("a folder larger than one page shows every secret", async () => {
      // 1 100 secrets: more than the 1 000 the page asks per ListSecrets call, so it must follow next_page_token.
      for (const [from, to] of [[0, 1000], [1000, 1100]]) {
        const secrets = [];
        for (let i = from; i < to; i++) secrets.push({ key: `K${String(i).padStart(4, "0")}`, value: `${i}` });
        await api.secrets.batchCreateSecrets({ projectId: project.id, environment: env, secretPath: "/many", secrets });
      }
      await page.getByTestId("path-input").fill("/many");
      await page.getByTestId("load-secrets").click();
      await page.locator(`[data-testid=secret-row][data-key="K1099"]`).waitFor({ timeout: 10_000 });
      assert.equal(await page.getByTestId("secret-row").count(), 1100);
    });

    if (process.env.UI_SCREENSHOT) await page.screenshot({ path: process.env.UI_SCREENSHOT, fullPage: true });
  });
});
