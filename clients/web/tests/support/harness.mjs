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
