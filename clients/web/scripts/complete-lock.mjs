// Adds lock entries for @bufbuild/buf's platform packages that `npm install` left out because the registry
// it used does not serve them (only the linux ones are there). Without the entries `npm ci` refuses the lock
// ("Missing: @bufbuild/buf-darwin-arm64@ from lock file"). The stubs carry os/cpu, so npm skips them on other
// platforms, and on their own platform installs them from the registry by version (no integrity recorded).
// The repository root's package-lock.json has the same stubs. Run after every `npm install`:
//   node scripts/complete-lock.mjs [path/to/package-lock.json]   (default: clients/web's)
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const lockPath = process.argv[2]
  ? pathToFileURL(path.resolve(process.argv[2]))
  : new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const buf = lock.packages["node_modules/@bufbuild/buf"];
if (!buf) throw new Error("@bufbuild/buf is not in package-lock.json");

const platform = {
  "darwin-arm64": ["darwin", "arm64"],
  "darwin-x64": ["darwin", "x64"],
  "linux-aarch64": ["linux", "arm64"],
  "linux-armv7": ["linux", "arm"],
  "linux-x64": ["linux", "x64"],
  "win32-arm64": ["win32", "arm64"],
  "win32-x64": ["win32", "x64"],
};

let added = 0;
for (const [name, version] of Object.entries(buf.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const suffix = name.replace("@bufbuild/buf-", "");
  const [os, cpu] = platform[suffix] ?? [];
  if (!os) throw new Error(`unknown platform package ${name}`);
  lock.packages[key] = {
    version,
    cpu: [cpu],
    dev: true,
    license: buf.license,
    optional: true,
    os: [os],
    engines: buf.engines,
  };
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + "\n");
console.log(`package-lock.json: ${added} @bufbuild/buf platform entries added`);
