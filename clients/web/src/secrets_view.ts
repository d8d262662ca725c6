// The Secrets view: project / environment / folder tree, the folder's secrets with values masked until revealed
// (a reveal is a GetSecret, so it is audited), create / edit / delete, a pasted .env block as one batch, version
// history with rollback, and the folder's imports.
import { Code, ConnectError } from "@connectrpc/connect";
import { clearError, ctx, report, session } from "./context";
import { $, button, el, errorText, fmtTime, formValues, nameWithId, onSubmit, show } from "./dom";
import { parseDotenv } from "./dotenv";
import { followEvents, clearEvents, type Changed } from "./events_panel";
import type { Folder, Secret } from "./gen/hush/v1/secrets_pb";

const ui = {
  scopeForm: $<HTMLFormElement>("scope-form"),
  project: $<HTMLSelectElement>("project-select"),
  env: $<HTMLSelectElement>("env-select"),
  path: $<HTMLInputElement>("path-input"),
  tree: $("folder-tree"),
  newFolder: $<HTMLButtonElement>("new-folder"),
  folderForm: $<HTMLFormElement>("folder-form"),
  folderName: $<HTMLInputElement>("folder-name"),
  folderError: $("folder-error"),
  deleteFolder: $<HTMLButtonElement>("delete-folder"),
  secretsScope: $("secrets-scope"),
  secretsStatus: $("secrets-status"),
  secretsBody: $("secrets-body"),
  newSecret: $<HTMLButtonElement>("new-secret"),
  secretForm: $<HTMLFormElement>("secret-form"),
  secretFormTitle: $("secret-form-title"),
  secretKey: $<HTMLInputElement>("secret-key-input"),
  secretValue: $<HTMLTextAreaElement>("secret-value-input"),
  secretComment: $<HTMLInputElement>("secret-comment-input"),
  secretCancel: $<HTMLButtonElement>("secret-cancel"),
  secretError: $("secret-form-error"),
  pasteDotenv: $<HTMLButtonElement>("paste-dotenv"),
  dotenvForm: $<HTMLFormElement>("dotenv-form"),
  dotenvInput: $<HTMLTextAreaElement>("dotenv-input"),
  dotenvCancel: $<HTMLButtonElement>("dotenv-cancel"),
  dotenvError: $("dotenv-error"),
  versionsPanel: $("versions-panel"),
  versionsTitle: $("versions-title"),
  versionsBody: $("versions-body"),
  versionsClose: $<HTMLButtonElement>("versions-close"),
  versionsError: $("versions-error"),
  importsList: $("imports-list"),
  importForm: $<HTMLFormElement>("import-form"),
  importEnv: $<HTMLSelectElement>("import-env"),
  importError: $("import-error"),
};

/** Aborts the events subscription (and anything else tied to the selected project). */
let projectScope: AbortController | null = null;
/** Bumped on every secrets load so a slow answer never overwrites a newer one. */
let generation = 0;
/** The secret being edited (its version, for check-and-set), or null when adding. */
let editing: Secret | null = null;
/** Keys changed elsewhere while this folder was on screen, with what happened: a marker on their rows. */
const changedKeys = new Map<string, string>();
/** Which folder `changedKeys` is about. */
let changedScope = "";
/**
 * Values revealed in the folder on screen, by `env:path:key`, with the version they belong to: a reload of the
 * list (a live event, a second load) keeps a revealed row revealed while its version is the same, and a reveal
 * answered after a reload shows in the new row. Cleared with the folder and at sign-out.
 */
const revealed = new Map<string, { version: string; value: string }>();
/** Events still to come for this page's own writes, per key: each write of a key makes one event. */
const ownWrites = new Map<string, number>();

/** Runs a write of `keys`, so that the event it makes is not taken for a change from elsewhere. */
async function ownWrite<T>(keys: string[], write: () => Promise<T>): Promise<T> {
  for (const key of keys) ownWrites.set(key, (ownWrites.get(key) ?? 0) + 1);
  try {
    return await write();
  } catch (err) {
    // No write, no event.
    for (const key of keys) takeOwn(key);
    throw err;
  }
}

/** Whether an event for `key` is one of this page's own writes (and counts it off). */
function takeOwn(key: string): boolean {
  const left = ownWrites.get(key) ?? 0;
  if (left <= 1) ownWrites.delete(key);
  else ownWrites.set(key, left - 1);
  return left > 0;
}

function scope() {
  return { projectId: ui.project.value, environment: ui.env.value, secretPath: ui.path.value.trim() || "/" };
}

function joinPath(parent: string, name: string): string {
  return `${parent.replace(/\/+$/, "")}/${name.replace(/^\/+/, "")}`;
}

export function resetSecretsView() {
  generation++;
  projectScope?.abort();
  projectScope = null;
  revealed.clear();
  for (const node of [ui.project, ui.env, ui.secretsBody, ui.tree, ui.importsList]) node.replaceChildren();
  show(ui.secretsStatus, null);
  clearEvents();
}

/** Fills the project list (`name (short id)`) and opens the selected project. */
export async function showProjects() {
  const options = ctx.projects.map((p) => el("option", { value: p.id, title: p.id }, nameWithId(p.name, p.id)));
  const previous = ui.project.value;
  ui.project.replaceChildren(...options);
  if (options.length === 0) {
    ui.project.append(el("option", { value: "", disabled: "" }, "no projects"));
    show(ui.secretsStatus, "No projects yet: create one with `hush projects create NAME`.");
    return;
  }
  if (options.some((o) => o.value === previous)) ui.project.value = previous;
  await selectProject();
}

ui.project.addEventListener("change", () => void selectProject());
ui.env.addEventListener("change", () => {
  ui.path.value = "/";
  void loadFolder();
});
ui.scopeForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void loadFolder();
});

async function selectProject() {
  const s = session();
  const projectId = ui.project.value;
  if (!projectId) return;
  projectScope?.abort();
  const aborter = new AbortController();
  projectScope = aborter;
  clearEvents();
  void followEvents(s, projectId, aborter.signal, onChange);
  generation++;
  ui.env.replaceChildren();
  ui.secretsBody.replaceChildren();
  try {
    const res = await s.clients.projects.listEnvironments({ projectId }, { signal: aborter.signal });
    if (aborter.signal.aborted) return;
    const envs = [...res.environments].sort((a, b) => a.position - b.position);
    const options = () =>
      envs.map((e) => el("option", { value: e.slug, title: e.name }, e.name === e.slug ? e.slug : `${e.slug} (${e.name})`));
    ui.env.replaceChildren(...options());
    ui.importEnv.replaceChildren(...options());
  } catch (err) {
    if (!aborter.signal.aborted) report(err, "Listing environments failed");
    return;
  }
  await loadFolder();
}

/** Loads the tree, the secrets and the imports of the folder in the path box. */
export async function loadFolder() {
  // Errors about the folder left behind would be stale here.
  for (const error of [ui.folderError, ui.importError, ui.secretError, ui.dotenvError, ui.versionsError]) show(error, null);
  ui.versionsPanel.hidden = true;
  await Promise.all([loadTree(), loadSecrets(), loadImports()]);
}

// ---- folder tree ------------------------------------------------------------------------------------------

async function loadTree() {
  const s = session();
  const { projectId, environment } = scope();
  if (!projectId || !environment) return;
  try {
    const res = await s.clients.secrets.listFolders({ projectId, environment, secretPath: "/", recursive: true });
    renderTree(res.folders);
  } catch (err) {
    ui.tree.replaceChildren();
    if (ConnectError.from(err).code !== Code.NotFound) report(err, "Listing folders failed");
  }
}

function renderTree(folders: Folder[]) {
  const current = scope().secretPath;
  const paths = ["/", ...folders.map((f) => f.path).sort()];
  const items = paths.map((path) => {
    const depth = path === "/" ? 0 : path.split("/").length - 1;
    const name = path === "/" ? "/ (root)" : path.slice(path.lastIndexOf("/") + 1);
    const open = button(name, {
      class: `tree-item${path === current ? " current" : ""}`,
      "data-testid": "folder-item",
      "data-path": path,
      "aria-current": path === current ? "true" : undefined,
      style: `padding-left: ${0.5 + depth * 1.1}em`,
      title: path,
    }, async () => {
      ui.path.value = path;
      await loadFolder();
    });
    return el("li", {}, open);
  });
  ui.tree.replaceChildren(...items);
}

ui.newFolder.addEventListener("click", () => {
  ui.folderForm.hidden = !ui.folderForm.hidden;
  if (!ui.folderForm.hidden) ui.folderName.focus();
});

onSubmit(ui.folderForm, ui.folderError, async () => {
  const { projectId, environment, secretPath } = scope();
  const path = joinPath(secretPath, ui.folderName.value.trim());
  await session().clients.secrets.createFolder({ projectId, environment, path });
  ui.folderName.value = "";
  ui.folderForm.hidden = true;
  ui.path.value = path;
  await loadFolder();
});

ui.deleteFolder.addEventListener("click", async () => {
  const { projectId, environment, secretPath } = scope();
  if (secretPath === "/") {
    show(ui.secretsStatus, "The root folder cannot be deleted; delete its secrets instead.");
    return;
  }
  if (!confirm(`Delete ${environment}:${secretPath} with every secret in it?`)) return;
  try {
    const res = await session().clients.secrets.deleteFolder({ projectId, environment, path: secretPath });
    ui.path.value = secretPath.slice(0, secretPath.lastIndexOf("/")) || "/";
    await loadFolder();
    show(ui.secretsStatus, `Deleted ${secretPath} with ${res.deletedSecrets} secret(s).`);
  } catch (err) {
    report(err, "Deleting the folder failed");
  }
});

// ---- secrets ------------------------------------------------------------------------------------------------

async function loadSecrets() {
  const s = session();
  const current = scope();
  if (!current.projectId || !current.environment) return;
  const mine = ++generation;
  const here = `${current.projectId}/${current.environment}:${current.secretPath}`;
  if (here !== changedScope) {
    changedKeys.clear();
    revealed.clear();
    changedScope = here;
  }
  ui.secretsScope.textContent = `${current.environment}:${current.secretPath}`;
  show(ui.secretsStatus, "Loading…");
  try {
    // The server answers in pages bounded in count and size: follow them so the whole folder shows.
    const secrets: Secret[] = [];
    let pageToken = "";
    do {
      const page = await s.clients.secrets.listSecrets({ ...current, includeImports: true, pageSize: 1000, pageToken });
      if (mine !== generation || ctx.session !== s) return;
      // Values stay out of the page until someone reveals one (a read of its own, audited).
      secrets.push(...page.secrets.map((sec) => ({ ...sec, value: "" })));
      pageToken = page.nextPageToken;
    } while (pageToken);
    renderSecrets(secrets, current);
    clearError();
    show(ui.secretsStatus, secrets.length === 0 ? emptyHint() : null);
  } catch (err) {
    if (mine !== generation) return;
    ui.secretsBody.replaceChildren();
    const ce = ConnectError.from(err);
    if (ce.code === Code.NotFound) show(ui.secretsStatus, `Not found: ${ce.rawMessage}. Pick a folder on the left.`);
    else {
      show(ui.secretsStatus, null);
      report(ce, "Listing secrets failed");
    }
  }
}

function emptyHint(): string {
  const folders = ui.tree.childElementCount - 1;
  const below = folders > 0 ? ` ${folders} folder(s) in this environment are listed on the left.` : "";
  return `No secrets in this folder yet: add one, or paste a .env block.${below}`;
}

const MASK = "••••••";

function renderSecrets(secrets: Secret[], current: ReturnType<typeof scope>) {
  const present = new Map<string, string>();
  const rows = [...secrets]
    .sort((a, b) => a.key.localeCompare(b.key))
    .map((sec) => {
      // With include_imports a secret may live elsewhere; say where (and it is edited there, not here).
      const imported = sec.environment !== current.environment || sec.secretPath !== current.secretPath;
      const where = { ...current, environment: sec.environment, secretPath: sec.secretPath };
      const shown = `${sec.environment}:${sec.secretPath}:${sec.key}`;
      const version = String(sec.version);
      const value = el("span", { "data-testid": "secret-value", "data-masked": "true", class: "mono masked" }, MASK);
      const reveal = button("Reveal", { class: "small", "data-testid": "secret-reveal", "aria-label": `Reveal ${sec.key}` },
        async () => {
          if (value.dataset.masked === "false") {
            revealed.delete(shown);
            showValue(shown, null);
            return;
          }
          const got = await read(where, sec.key);
          if (got === null) return;
          const kept = { version, value: got };
          revealed.set(shown, kept);
          showValue(shown, kept);
        });
      present.set(shown, version);
      const copy = button("Copy", { class: "small", "data-testid": "secret-copy", "aria-label": `Copy ${sec.key}` }, async () => {
        const got = await read(where, sec.key);
        if (got === null) return;
        await navigator.clipboard.writeText(got);
        show(ui.secretsStatus, `Copied ${sec.key} to the clipboard.`);
      });
      const actions = [reveal, copy];
      if (!imported) {
        actions.push(
          button("Edit", { class: "small", "data-testid": "secret-edit", "aria-label": `Edit ${sec.key}` }, () => openEditor(sec)),
          button("History", { class: "small", "data-testid": "secret-history", "aria-label": `History of ${sec.key}` },
            () => showVersions(sec)),
          button("Delete", { class: "small danger", "data-testid": "secret-delete", "aria-label": `Delete ${sec.key}` },
            () => deleteSecret(sec)),
        );
      }
      const change = changedKeys.get(sec.key);
      return el(
        "tr",
        {
          "data-testid": "secret-row",
          "data-key": sec.key,
          "data-shown": shown,
          "data-imported": imported ? `${sec.environment}:${sec.secretPath}` : undefined,
          "data-changed": change,
          class: change ? "changed" : undefined,
          title: [sec.comment, `updated ${fmtTime(sec.updateTime ?? sec.createTime)}`].filter(Boolean).join(" · "),
        },
        el("td", { "data-testid": "secret-key", class: "mono" }, sec.key,
          ...(imported ? [el("div", { class: "muted" }, `from ${sec.environment}:${sec.secretPath}`)] : []),
          ...(change ? [el("span", { class: "badge", "data-testid": "secret-changed" }, `${change} elsewhere`)] : [])),
        el("td", {}, value),
        el("td", { "data-testid": "secret-version" }, String(sec.version)),
        el("td", {}, el("div", { class: "actions" }, ...actions)),
      );
    });
  ui.secretsBody.replaceChildren(...rows);
  // A value stays revealed while its row is here at the same version (deleted and made again is another secret).
  for (const [shown, kept] of revealed) {
    if (present.get(shown) === kept.version) showValue(shown, kept);
    else revealed.delete(shown);
  }
}

/**
 * Shows a revealed value in the row of `shown` (`env:path:key`) on screen now, if that row is still at the
 * value's version; with `null`, masks it.
 */
function showValue(shown: string, revealedValue: { version: string; value: string } | null) {
  const row = ui.secretsBody.querySelector(`[data-testid=secret-row][data-shown="${CSS.escape(shown)}"]`);
  const cell = row?.querySelector<HTMLElement>("[data-testid=secret-value]");
  const toggle = row?.querySelector<HTMLElement>("[data-testid=secret-reveal]");
  if (!cell || !toggle) return;
  if (revealedValue && row?.querySelector("[data-testid=secret-version]")?.textContent !== revealedValue.version) return;
  cell.textContent = revealedValue?.value ?? MASK;
  cell.dataset.masked = revealedValue ? "false" : "true";
  toggle.textContent = revealedValue ? "Hide" : "Reveal";
}

/** Reads one secret's value (GetSecret: audited as a read). */
async function read(where: ReturnType<typeof scope>, key: string): Promise<string | null> {
  try {
    const res = await session().clients.secrets.getSecret({ ...where, key });
    return res.secret?.value ?? "";
  } catch (err) {
    report(err, `Reading ${key} failed`);
    return null;
  }
}

async function openEditor(sec: Secret | null) {
  // Editing starts from the current value (read like a reveal, so audited): saving a comment alone must not
  // replace the value with an empty one.
  const current = sec ? await read(scope(), sec.key) : "";
  if (current === null) return;
  editing = sec;
  ui.dotenvForm.hidden = true;
  ui.secretForm.hidden = false;
  show(ui.secretError, null);
  ui.secretFormTitle.textContent = sec ? `Edit ${sec.key} (version ${sec.version})` : "Add secret";
  ui.secretKey.value = sec?.key ?? "";
  ui.secretKey.readOnly = sec !== null;
  ui.secretValue.value = current;
  ui.secretComment.value = "";
  ui.secretForm.scrollIntoView({ block: "nearest" });
  (sec ? ui.secretValue : ui.secretKey).focus();
}

/** Puts the keyboard focus back on a row's action after the list was drawn again. */
function focusRow(key: string, action = "secret-reveal") {
  document.querySelector<HTMLElement>(`[data-testid=secret-row][data-key="${CSS.escape(key)}"] [data-testid=${action}]`)?.focus();
}

function closeForms() {
  ui.secretForm.hidden = true;
  ui.dotenvForm.hidden = true;
  ui.secretValue.value = "";
}

// Escape closes an open form, as it closes dialogs.
for (const form of [ui.secretForm, ui.dotenvForm, ui.folderForm]) {
  form.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    form.hidden = true;
    if (form !== ui.folderForm) closeForms();
    ui.newSecret.focus();
  });
}

ui.newSecret.addEventListener("click", () => void openEditor(null));
ui.secretCancel.addEventListener("click", () => {
  closeForms();
  ui.newSecret.focus();
});

onSubmit(ui.secretForm, ui.secretError, async () => {
  const where = scope();
  const { key, value, comment } = formValues(ui.secretForm);
  const secrets = session().clients.secrets;
  const target = editing;
  if (target) {
    // Check-and-set: an edit made meanwhile by someone else is not overwritten silently.
    const update = { ...where, key: target.key, value, comment, expectedVersion: target.version };
    await ownWrite([target.key], () => secrets.updateSecret(update));
  } else {
    await ownWrite([key.trim()], () => secrets.createSecret({ ...where, key: key.trim(), value, comment }));
  }
  closeForms();
  const saved = target?.key ?? key.trim();
  changedKeys.delete(saved);
  await loadSecrets();
  await loadTree();
  focusRow(saved);
});

async function deleteSecret(sec: Secret) {
  if (!confirm(`Delete ${sec.key}? Its versions go with it.`)) return;
  try {
    const request = { ...scope(), key: sec.key, expectedVersion: sec.version };
    await ownWrite([sec.key], () => session().clients.secrets.deleteSecret(request));
    await loadSecrets();
  } catch (err) {
    report(err, `Deleting ${sec.key} failed`);
  }
}

ui.pasteDotenv.addEventListener("click", () => {
  ui.secretForm.hidden = true;
  ui.dotenvForm.hidden = false;
  show(ui.dotenvError, null);
  ui.dotenvInput.focus();
});
ui.dotenvCancel.addEventListener("click", () => {
  ui.dotenvForm.hidden = true;
  ui.dotenvInput.value = "";
  ui.pasteDotenv.focus();
});

onSubmit(ui.dotenvForm, ui.dotenvError, async () => {
  const pairs = parseDotenv(ui.dotenvInput.value);
  if (pairs.length === 0) throw new Error("nothing to save: paste KEY=value lines");
  const secrets = pairs.map(([key, value]) => ({ key, value, comment: "" }));
  const batch = { ...scope(), secrets, allowMissing: true };
  const res = await ownWrite(pairs.map(([key]) => key), () => session().clients.secrets.batchUpdateSecrets(batch)).catch(
    (err: unknown) => {
      // The server names entries by index (`secrets[3].key`); people pasted keys.
      const ce = ConnectError.from(err);
      throw new ConnectError(ce.rawMessage.replace(/secrets\[(\d+)\]/g, (all, i) => pairs[Number(i)]?.[0] ?? all), ce.code);
    },
  );
  ui.dotenvInput.value = "";
  ui.dotenvForm.hidden = true;
  await loadFolder();
  show(ui.secretsStatus, `Saved ${res.secrets.length} secret(s) in one transaction.`);
});

// ---- versions -------------------------------------------------------------------------------------------------

async function showVersions(sec: Secret) {
  ui.versionsPanel.hidden = false;
  ui.versionsTitle.textContent = `History of ${sec.key}`;
  ui.versionsPanel.scrollIntoView({ block: "nearest" });
  ui.versionsTitle.focus();
  show(ui.versionsError, null);
  try {
    const res = await session().clients.secrets.listSecretVersions({ ...scope(), key: sec.key });
    const rows = res.versions.map((v) =>
      el("tr", { "data-testid": "version-row", "data-version": String(v.version) },
        el("td", {}, String(v.version)),
        el("td", { class: "muted" }, fmtTime(v.createTime)),
        el("td", {}, v.comment),
        el("td", {}, v.version === sec.version
          ? el("span", { class: "muted" }, "current")
          : button("Roll back", { class: "small", "data-testid": "version-rollback", "aria-label": `Roll back to version ${v.version}` },
            async () => {
              try {
                const request = { ...scope(), key: sec.key, version: v.version, expectedVersion: sec.version };
                await ownWrite([sec.key], () => session().clients.secrets.rollbackSecret(request));
                ui.versionsPanel.hidden = true;
                await loadSecrets();
                show(ui.secretsStatus, `${sec.key} is back to the value of version ${v.version}.`);
              } catch (err) {
                show(ui.versionsError, errorText(err));
              }
            })),
      ));
    ui.versionsBody.replaceChildren(...rows);
  } catch (err) {
    show(ui.versionsError, errorText(err));
  }
}

ui.versionsClose.addEventListener("click", () => {
  ui.versionsPanel.hidden = true;
});
ui.versionsPanel.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") ui.versionsPanel.hidden = true;
});

// ---- imports --------------------------------------------------------------------------------------------------

async function loadImports() {
  const where = scope();
  if (!where.projectId || !where.environment) return;
  try {
    const res = await session().clients.secrets.listSecretImports(where);
    const items = res.secretImports.map((imp) =>
      el("li", { "data-testid": "import-item", "data-from": `${imp.importEnvironment}:${imp.importPath}` },
        el("span", { class: "mono" }, `${imp.importEnvironment}:${imp.importPath}`), " ",
        button("Remove", { class: "small danger", "aria-label": `Remove import of ${imp.importEnvironment}:${imp.importPath}` },
          async () => {
            if (!confirm(`Stop importing ${imp.importEnvironment}:${imp.importPath} here?`)) return;
            try {
              await session().clients.secrets.deleteSecretImport({ projectId: where.projectId, secretImportId: imp.id });
              await loadFolder();
            } catch (err) {
              report(err, "Removing the import failed");
            }
          })));
    ui.importsList.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "none")]));
  } catch (err) {
    ui.importsList.replaceChildren();
    if (ConnectError.from(err).code !== Code.NotFound) report(err, "Listing imports failed");
  }
}

onSubmit(ui.importForm, ui.importError, async () => {
  const { env, path } = formValues(ui.importForm);
  await session().clients.secrets.createSecretImport({ ...scope(), importEnvironment: env, importPath: path.trim() });
  (ui.importForm.elements.namedItem("path") as HTMLInputElement).value = "";
  await loadFolder();
});

// ---- live changes ---------------------------------------------------------------------------------------------

/** An event touched a secret: mark it and reload when it is in view (or an import may have changed). */
function onChange(changes: Changed[]) {
  const current = scope();
  let affected = false;
  const deleted: string[] = [];
  for (const c of changes) {
    const here = c.environment === current.environment && c.secretPath === current.secretPath;
    // An imported secret on screen changed in its own folder.
    const imported = c.key !== "" && ui.secretsBody.querySelector(
      `[data-testid=secret-row][data-key="${CSS.escape(c.key)}"][data-imported="${CSS.escape(`${c.environment}:${c.secretPath}`)}"]`,
    ) !== null;
    if (!here && !imported) continue;
    affected = true;
    if (!c.key || takeOwn(c.key)) continue;
    changedKeys.set(c.key, c.what);
    if (c.what === "delete") deleted.push(c.key);
  }
  // A deleted row is gone from the list: say so instead.
  if (deleted.length) show(ui.secretsStatus, `Deleted elsewhere: ${deleted.join(", ")}.`);
  if (affected || ui.secretsBody.querySelector("[data-imported]")) void loadSecrets();
  if (changes.some((c) => c.what === "import" || c.what === "create")) void loadTree();
}
