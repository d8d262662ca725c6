// Shared by the browser tests: where hush and Chromium are, free ports, polling, and the node gRPC client.
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = path.resolve(here, "../..");
const repoDir = path.resolve(webDir, "../..");
export const distDir = path.join(webDir, "dist");

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function hushBin() {
  if (process.env.HUSH_BIN) return process.env.HUSH_BIN;
  const candidates = [];
  if (process.env.CARGO_TARGET_DIR) candidates.push(path.join(process.env.CARGO_TARGET_DIR, "debug", "hush"));
  candidates.push(path.join(repoDir, "target", "debug", "hush"));
  return candidates.find((c) => existsSync(c)) ?? candidates[0];
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs, server) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (server?.exitCode != null) throw new Error(`hush exited (${server.exitCode}) while waiting for ${what}`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** Bundles tests/support/node-client.ts (generated client + connect-node) into one importable file. */
export async function loadNodeClient(tmp) {
  const outfile = path.join(tmp, "node-client.mjs");
  await build({
    entryPoints: [path.join(here, "node-client.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node18",
    logLevel: "warning",
  });
  return import(pathToFileURL(outfile).href);
}

/**
 * Starts `hush serve` on a free port with dist/ as its UI, in `tmp`; resolves once the page is served.
 * Returns { base, creds (bootstrap.json), dataDir, log() (server output, tail), stop() }.
 */
export async function startHush(tmp, bin, extraArgs = []) {
  const { spawn } = await import("node:child_process");
  const { readFile } = await import("node:fs/promises");
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dataDir = path.join(tmp, "data");
  const args = ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--ui-dir", distDir, ...extraArgs];
  const server = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HUSH_LOG: process.env.HUSH_LOG ?? "info", NO_COLOR: "1" },
  });
  let log = "";
  const collect = (chunk) => {
    log += chunk;
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  server.stdout.on("data", collect);
  server.stderr.on("data", collect);
  const creds = await waitFor(
    "bootstrap.json",
    async () => JSON.parse(await readFile(path.join(dataDir, "bootstrap.json"), "utf8")),
    30_000,
    server,
  );
  await waitFor("the /ui/ page", async () => (await fetch(`${base}/ui/`)).ok, 30_000, server);
  return {
    base,
    creds,
    dataDir,
    log: () => log.slice(-4000),
    async stop() {
      if (server.exitCode != null) return;
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      const timer = setTimeout(() => server.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
