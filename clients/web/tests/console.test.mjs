// The web console end to end, in Debian's Chromium driven by playwright-core against a real `hush serve`: the
// secrets view (folders, masked values revealed and copied, edit, history and rollback, a pasted .env block,
// imports, a change made by the CLI appearing live), the audit log (the reveal is there; filters; NDJSON
// export), audit streams (create, test against a local receiver, backfill, delete) and identities & roles
// (a new identity's secret shown once, a project role given, a role's policy error shown next to the policy).
// Screenshots of every view at 1280×800 and 390×844 go to $UI_SCREENSHOTS (default: a temp dir, printed).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, distDir, hushBin, loadNodeClient, startHush } from "./support/harness.mjs";

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

describe("web console against hush serve", { timeout: 240_000 }, () => {
  let tmp;
  let hush;
  let api;
  let token;
  let browser;
  let context;
  let page;
  let receiver;
  const received = [];
  const pageLog = [];
  const shots = process.env.UI_SCREENSHOTS ?? path.join(os.tmpdir(), "hush-console-screenshots");

  before(async () => {
    assert.ok(existsSync(path.join(distDir, "index.html")), "dist/ is missing: run `npm run build` first");
    const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
    assert.ok(existsSync(chromiumPath), `Chromium not found at ${chromiumPath} (apt-get install chromium)`);
    tmp = await mkdtemp(path.join(os.tmpdir(), "hush-console-test-"));
    await mkdir(shots, { recursive: true });
    // The streams view sends to this receiver on 127.0.0.1, which hush refuses unless private ones are allowed.
    hush = await startHush(tmp, hushBin(), ["--streams-allow-private", "true"]);
    receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push({ path: req.url, body });
        res.writeHead(200).end("ok");
      });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
    const { nodeClients } = await loadNodeClient(tmp);
    api = nodeClients(hush.base, () => token);
    token = (await api.identity.login({ clientId: hush.creds.client_id, clientSecret: hush.creds.client_secret })).accessToken;
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: SIZES.desktop, acceptDownloads: true });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: hush.base });
    page = await context.newPage();
    page.on("console", (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => pageLog.push(`pageerror: ${e.message}`));
    page.on("dialog", (d) => d.accept());
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    receiver?.close();
    await hush?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    console.log(`screenshots: ${shots}`);
  });

  async function step(name, fn) {
    try {
      await fn();
    } catch (err) {
      const shot = path.join(os.tmpdir(), `hush-console-failure-${Date.now()}.png`);
      await page?.screenshot({ path: shot, fullPage: true }).catch(() => undefined);
      console.error(`[${name}] failed; screenshot: ${shot}\npage log:\n${pageLog.join("\n") || "(empty)"}`);
      console.error(`server log (tail):\n${hush.log()}`);
      throw err;
    }
  }

  /** Screenshots of the page as it is, at both sizes. */
  async function snap(view) {
    for (const [size, viewport] of Object.entries(SIZES)) {
      await page.setViewportSize(viewport);
      await page.screenshot({ path: path.join(shots, `${view}-${size}.png`), fullPage: true });
    }
    await page.setViewportSize(SIZES.desktop);
  }

  const row = (key) => page.locator(`[data-testid=secret-row][data-key="${key}"]`);
  const valueOf = (key) => row(key).getByTestId("secret-value");
  async function reveal(key, expected) {
    await row(key).getByTestId("secret-reveal").click();
    await page.waitForFunction(
      ([k, v]) => document.querySelector(`[data-testid=secret-row][data-key="${k}"] [data-testid=secret-value]`)?.textContent === v,
      [key, expected],
      { timeout: 5_000 },
    );
  }

  it("drives secrets, live changes, audit, streams and access", async () => {
    const project = (await api.projects.createProject({ name: `console-${Date.now()}` })).project;

    await step("sign in; the header names the identity and its org", async () => {
      await page.goto(`${hush.base}/ui/`);
      await page.getByTestId("client-id").fill(hush.creds.client_id);
      await page.getByTestId("client-secret").fill(hush.creds.client_secret);
      await page.getByTestId("login-button").click();
      await page.getByTestId("app-view").waitFor({ state: "visible", timeout: 10_000 });
      await page.waitForFunction(() => document.querySelector("[data-testid=session-info]")?.textContent?.includes("bootstrap-admin"));
      const info = await page.getByTestId("session-info").textContent();
      assert.match(info, /bootstrap-admin · org …[0-9a-f]{6}/);
      const option = await page.locator(`[data-testid=project-select] option[value="${project.id}"]`).textContent();
      assert.equal(option, `${project.name} (…${project.id.slice(-6)})`, "projects read name (short id)");
      await page.getByTestId("project-select").selectOption(project.id);
      await page.waitForSelector(`[data-testid=events-status][data-state="live"]`, { timeout: 10_000 });
      await page.getByTestId("secrets-status").filter({ hasText: "add one, or paste" }).waitFor();
    });

    await step("create a folder and a secret; the value is masked until revealed", async () => {
      await page.getByTestId("new-folder").click();
      await page.getByTestId("folder-name").fill("api");
      await page.getByTestId("folder-name").press("Enter");
      await page.locator(`[data-testid=folder-item][data-path="/api"][aria-current=true]`).waitFor();
      await page.getByTestId("new-secret").click();
      await page.getByTestId("secret-key-input").fill("DB_PASSWORD");
      await page.getByTestId("secret-value-input").fill("s3cr3t-one");
      await page.getByTestId("secret-save").click();
      await row("DB_PASSWORD").waitFor();
      assert.equal(await valueOf("DB_PASSWORD").getAttribute("data-masked"), "true");
      assert.ok(!(await page.content()).includes("s3cr3t-one"), "the value is not in the page");
      await reveal("DB_PASSWORD", "s3cr3t-one");
      await row("DB_PASSWORD").getByTestId("secret-copy").click();
      await page.getByTestId("secrets-status").filter({ hasText: "Copied DB_PASSWORD" }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "s3cr3t-one");
    });

    await step("edit, then roll back from the history", async () => {
      // The editor starts from the current value: a comment-only edit keeps it.
      await row("DB_PASSWORD").getByTestId("secret-edit").click();
      await page.waitForFunction(() => document.querySelector("[data-testid=secret-value-input]")?.value === "s3cr3t-one");
      await page.getByTestId("secret-comment-input").fill("rotated soon");
      await page.getByTestId("secret-save").click();
      await page.getByTestId("secret-form").waitFor({ state: "hidden" });
      await reveal("DB_PASSWORD", "s3cr3t-one");
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("data-testid")), "secret-reveal", "focus stays on the row");
      await row("DB_PASSWORD").getByTestId("secret-edit").click();
      await page.waitForFunction(() => document.querySelector("[data-testid=secret-value-input]")?.value === "s3cr3t-one");
      await page.getByTestId("secret-save").click();
      await page.waitForFunction(() => document.querySelector('[data-key="DB_PASSWORD"] [data-testid=secret-version]')?.textContent === "3");
      await row("DB_PASSWORD").getByTestId("secret-history").click();
      await page.locator(`[data-testid=version-row][data-version="1"]`).waitFor();
      await snap("secrets-history");
      await page.locator(`[data-testid=version-row][data-version="1"]`).getByTestId("version-rollback").click();
      await page.waitForFunction(() => document.querySelector('[data-key="DB_PASSWORD"] [data-testid=secret-version]')?.textContent === "4");
      await reveal("DB_PASSWORD", "s3cr3t-one");
    });

    await step("paste a .env block: one batch", async () => {
      await page.getByTestId("paste-dotenv").click();
      await page.getByTestId("dotenv-input").fill("# pasted\nAPI_URL=https://api.internal\nexport TOKEN='t # not a comment'\nBAD LINE\n");
      await page.getByTestId("dotenv-save").click();
      await page.getByTestId("dotenv-error").waitFor({ state: "visible" });
      assert.match(await page.getByTestId("dotenv-error").textContent(), /line 4/);
      assert.equal(await row("API_URL").count(), 0, "nothing of a refused block is saved");
      await page.getByTestId("dotenv-input").fill("API_URL=https://api.internal\nexport TOKEN='t # not a comment'\n");
      await page.getByTestId("dotenv-save").click();
      await row("TOKEN").waitFor();
      await reveal("TOKEN", "t # not a comment");
    });

    await step("imports: the folder sees another folder's secrets", async () => {
      await api.secrets.createSecret({ projectId: project.id, environment: "dev", secretPath: "/shared", key: "SHARED_KEY", value: "s" });
      await page.getByTestId("import-env").selectOption("dev");
      await page.getByTestId("import-path").fill("/shared");
      await page.getByTestId("import-path").press("Enter");
      await page.locator(`[data-testid=import-item][data-from="dev:/shared"]`).waitFor();
      await row("SHARED_KEY").waitFor();
      assert.equal(await row("SHARED_KEY").getAttribute("data-imported"), "dev:/shared");
    });

    await step("a change made by the CLI appears live, marked", async () => {
      const cli = promisify(execFile);
      const env = { ...process.env, HUSH_TOKEN: token, HUSH_SERVER: hush.base, HUSH_CONFIG_DIR: tmp };
      await cli(hushBin(), ["secrets", "set", "API_URL", "https://api.changed", "--project", project.id, "--path", "/api"], { env });
      await page.locator(`[data-testid=secret-row][data-key="API_URL"][data-changed="update"]`).waitFor({ timeout: 5_000 });
      assert.match(await row("API_URL").getByTestId("secret-changed").textContent(), /update elsewhere/);
      assert.equal(await row("API_URL").getByTestId("secret-version").textContent(), "2");
      await page.locator(`[data-testid=event-row][data-key="API_URL"][data-type="secret:update"]`).waitFor();
      await snap("secrets");
    });

    await step("audit: the reveal is in the log; filters; NDJSON export", async () => {
      await page.getByTestId("tab-audit").click();
      await page.getByTestId("audit-row").first().waitFor();
      await page.getByTestId("audit-events").fill("get-secret");
      await page.getByTestId("audit-project").selectOption(project.id);
      await page.getByTestId("audit-apply").click();
      await page.waitForFunction(() =>
        [...document.querySelectorAll("[data-testid=audit-row]")].length > 0 &&
        [...document.querySelectorAll("[data-testid=audit-row]")].every((r) => r.getAttribute("data-event") === "get-secret"));
      const details = await page.getByTestId("audit-details").allTextContents();
      assert.ok(details.some((d) => d.includes("DB_PASSWORD")), `the reveal was audited: ${details}`);
      assert.ok(details.every((d) => !d.includes("s3cr3t")), "no value in the audit log");
      await page.getByTestId("audit-events").fill("no-such-event");
      await page.getByTestId("audit-apply").click();
      await page.getByTestId("audit-error").waitFor({ state: "visible" });
      assert.match(await page.getByTestId("audit-error").textContent(), /InvalidArgument.*no-such-event/);
      await page.getByTestId("audit-events").fill("get-secret");
      await page.getByTestId("audit-apply").click();
      const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("audit-export").click()]);
      const lines = (await readFile(await download.path(), "utf8")).trim().split("\n").map((l) => JSON.parse(l));
      assert.ok(lines.length > 0 && lines.every((l) => l.eventType === "get-secret"), "the export has the filter's entries");
      await snap("audit");
    });

    await step("streams: create against a local receiver, test, backfill, delete", async () => {
      await page.getByTestId("tab-streams").click();
      await page.getByTestId("streams-status").waitFor();
      const url = `http://127.0.0.1:${receiver.address().port}/in`;
      await page.getByTestId("stream-name").fill("siem");
      await page.getByTestId("stream-url").fill(url);
      await page.getByTestId("stream-header-name").fill("X-Token");
      await page.getByTestId("stream-header-value").fill("header-credential");
      await page.getByTestId("stream-create").click();
      const card = page.locator(`[data-testid=stream-card][data-name="siem"]`);
      await card.waitFor({ timeout: 10_000 });
      assert.ok(received.length > 0, "creating sent a test entry");
      assert.ok(!(await page.content()).includes("header-credential"), "the header value is never shown");
      await card.getByTestId("stream-test").click();
      await card.getByTestId("stream-result").filter({ hasText: "HTTP 200" }).waitFor();
      await card.getByTestId("stream-backfill").click();
      await card.getByTestId("stream-result").filter({ hasText: /Queued \d+ entries/ }).waitFor();
      await page.getByTestId("streams-refresh").click();
      await snap("streams");
      await card.getByTestId("stream-delete").click();
      await card.waitFor({ state: "detached" });
    });

    await step("access: a new identity's secret once, a project role, a policy error next to its policy", async () => {
      await page.getByTestId("tab-access").click();
      await page.getByTestId("identity-row").first().waitFor();
      await page.getByTestId("identity-name").fill("deployer");
      await page.getByTestId("identity-create").click();
      await page.getByTestId("client-secret-box").waitFor({ state: "visible" });
      const secret = await page.getByTestId("new-client-secret").textContent();
      const clientId = await page.getByTestId("new-client-id").textContent();
      assert.ok((await api.identity.login({ clientId, clientSecret: secret })).accessToken, "the shown secret logs in");
      await page.locator(`[data-testid=identity-row][data-name="deployer"]`).waitFor();
      await page.getByTestId("member-project").selectOption(project.id);
      await page.getByTestId("member-identity").selectOption({ label: "deployer" });
      await page.getByTestId("member-role").selectOption({ label: "viewer" });
      await page.getByTestId("member-assign").click();
      await page.locator(`[data-testid=member-row][data-name="deployer"][data-role="viewer"]`).waitFor();
      await snap("access");
      await page.getByTestId("client-secret-done").click();

      await page.getByTestId("role-new").click();
      await page.getByTestId("role-name").fill("api-reader");
      const policy = page.getByTestId("policy-row").first();
      await policy.locator("[name=actions]").fill("reed");
      await page.getByTestId("role-save").click();
      await policy.getByTestId("policy-error").waitFor({ state: "visible" });
      assert.match(await policy.getByTestId("policy-error").textContent(), /policies\[0\]\.actions/);
      assert.equal(await policy.locator("[name=actions]").getAttribute("aria-invalid"), "true");
      await policy.locator("[name=actions]").fill("read");
      await policy.locator("[name=secretPath]").fill("/api/**");
      await page.getByTestId("role-save").click();
      await page.locator(`[data-testid=role-item][data-name="api-reader"]`).waitFor();
    });

    await step("sign-in page and no value in storage", async () => {
      const stored = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
      for (const value of ["s3cr3t", "https://api.changed", token]) assert.ok(!stored.includes(value), `${value} not stored`);
      await page.getByTestId("logout-button").click();
      await page.getByTestId("login-view").waitFor({ state: "visible" });
      await snap("login");
    });
    assert.deepEqual(pageLog.filter((l) => l.startsWith("pageerror")), [], "no script error");
  });
});
