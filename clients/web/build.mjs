// Builds the page into dist/: index.html and style.css copied, src/main.ts bundled to app.js.
// Every URL in index.html is relative, so dist/ works under any prefix (hush serves it at /ui/).
import { build } from "esbuild";
import { copyFile, mkdir, rm, access } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(root, "src");
const dist = path.join(root, "dist");

try {
  await access(path.join(src, "gen", "hush", "v1", "events_pb.ts"));
} catch {
  console.error("src/gen is missing: run `npm run generate` first");
  process.exit(1);
}

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  entryPoints: [path.join(src, "main.ts")],
  outfile: path.join(dist, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  legalComments: "none",
  logLevel: "info",
});
for (const f of ["index.html", "style.css"]) await copyFile(path.join(src, f), path.join(dist, f));
console.log("built dist/ (index.html, style.css, app.js)");
