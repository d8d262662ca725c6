// The hush web page: sign in with a machine identity, pick project / environment / folder, list the secrets
// there, and follow the project's events live. Everything goes over grpc-web to the same `hush serve` port.
import { Code, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { bearerAuth, hushClients, type HushClients } from "./api";
import type { Event } from "./gen/hush/v1/events_pb";
import type { Secret } from "./gen/hush/v1/secrets_pb";

// ---- DOM -------------------------------------------------------------------------------------------------

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}

const ui = {
  session: $("session"),
  sessionInfo: $("session-info"),
  logout: $<HTMLButtonElement>("logout-button"),
  appError: $("app-error"),
  loginView: $("login-view"),
  loginForm: $<HTMLFormElement>("login-form"),
  serverUrl: $<HTMLInputElement>("server-url"),
  clientId: $<HTMLInputElement>("client-id"),
  clientSecret: $<HTMLInputElement>("client-secret"),
  loginButton: $<HTMLButtonElement>("login-button"),
  loginError: $("login-error"),
  appView: $("app-view"),
  scopeForm: $<HTMLFormElement>("scope-form"),
  project: $<HTMLSelectElement>("project-select"),
  env: $<HTMLSelectElement>("env-select"),
  path: $<HTMLInputElement>("path-input"),
  secretsScope: $("secrets-scope"),
  secretsStatus: $("secrets-status"),
  secretsBody: $("secrets-body"),
  eventsStatus: $("events-status"),
  eventsHeartbeat: $("events-heartbeat"),
  eventsBody: $("events-body"),
  eventsClear: $<HTMLButtonElement>("events-clear"),
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function show(node: HTMLElement, text: string | null) {
  node.textContent = text ?? "";
  node.hidden = !text;
}

function fmtTime(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }) : "";
}

function fmtClock(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleTimeString() : "";
}

function errorText(err: unknown): string {
  const ce = ConnectError.from(err);
  return `${Code[ce.code] ?? ce.code}: ${ce.rawMessage}`;
}

// ---- session ---------------------------------------------------------------------------------------------

const STORE_SERVER = "hush.server";
const STORE_CLIENT_ID = "hush.clientId";

interface Session {
  server: string;
  token: string;
  identityId: string;
  clients: HushClients;
}

let session: Session | null = null;
/** Aborts the current events subscription (and anything else tied to the selected project). */
let projectScope: AbortController | null = null;
/** Bumped on every secrets load so a slow answer never overwrites a newer one. */
let secretsGeneration = 0;

function defaultServer(): string {
  const saved = localStorage.getItem(STORE_SERVER);
  if (saved) return saved;
  return location.protocol.startsWith("http") ? location.origin : "http://127.0.0.1:8080";
}

ui.serverUrl.value = defaultServer();
ui.clientId.value = localStorage.getItem(STORE_CLIENT_ID) ?? "";

ui.loginForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void login();
});

ui.logout.addEventListener("click", () => {
  const s = session;
  signOut(null);
  // Best effort: the token is forgotten by the page either way.
  s?.clients.identity.revokeToken({}).catch(() => undefined);
});

async function login() {
  show(ui.loginError, null);
  const server = ui.serverUrl.value.trim().replace(/\/+$/, "");
  ui.loginButton.disabled = true;
  try {
    let token: string | undefined;
    const transport = createGrpcWebTransport({ baseUrl: server, interceptors: [bearerAuth(() => token)] });
    const clients = hushClients(transport);
    const res = await clients.identity.login({
      clientId: ui.clientId.value.trim(),
      clientSecret: ui.clientSecret.value,
    });
    token = res.accessToken;
    session = { server, token, identityId: res.identityId, clients };
    localStorage.setItem(STORE_SERVER, server);
    localStorage.setItem(STORE_CLIENT_ID, ui.clientId.value.trim());
    ui.clientSecret.value = "";
    ui.sessionInfo.textContent = `${ui.clientId.value.trim()} @ ${server}`;
    ui.session.hidden = false;
    ui.loginView.hidden = true;
    ui.appView.hidden = false;
    show(ui.appError, null);
    await loadProjects();
  } catch (err) {
    show(ui.loginError, `Sign-in failed: ${errorText(err)}`);
  } finally {
    ui.loginButton.disabled = false;
  }
}

/** Back to the login form, with an optional reason (e.g. an expired token). */
function signOut(reason: string | null) {
  session = null;
  secretsGeneration++;
  projectScope?.abort();
  projectScope = null;
  ui.project.replaceChildren();
  ui.env.replaceChildren();
  ui.secretsBody.replaceChildren();
  ui.eventsBody.replaceChildren();
  show(ui.secretsStatus, null);
  setEventsState("idle", "idle");
  ui.session.hidden = true;
  ui.appView.hidden = true;
  ui.loginView.hidden = false;
  show(ui.appError, null);
  show(ui.loginError, reason);
}

/** Shows an error; an unauthenticated one (expired or revoked token) signs out. */
function report(err: unknown, what: string) {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unauthenticated) {
    signOut(`Session ended (${ce.rawMessage}); sign in again.`);
    return;
  }
  show(ui.appError, `${what}: ${errorText(ce)}`);
}

// ---- projects and environments ---------------------------------------------------------------------------

async function loadProjects() {
  const s = session;
  if (!s) return;
  const options: HTMLOptionElement[] = [];
  let pageToken = "";
  try {
    do {
      const page = await s.clients.projects.listProjects({ pageSize: 1000, pageToken });
      for (const p of page.projects) options.push(el("option", { value: p.id, title: p.id }, p.name));
      pageToken = page.nextPageToken;
    } while (pageToken);
  } catch (err) {
    report(err, "Listing projects failed");
    return;
  }
  if (session !== s) return;
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
ui.env.addEventListener("change", () => void loadSecrets());
ui.scopeForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void loadSecrets();
});

async function selectProject() {
  const s = session;
  const projectId = ui.project.value;
  if (!s || !projectId) return;
  projectScope?.abort();
  const scope = new AbortController();
  projectScope = scope;
  ui.eventsBody.replaceChildren();
  void followEvents(s, projectId, scope.signal);

  secretsGeneration++; // answers still on their way are for the previous project
  ui.env.replaceChildren();
  ui.secretsBody.replaceChildren();
  try {
    const res = await s.clients.projects.listEnvironments({ projectId }, { signal: scope.signal });
    if (scope.signal.aborted) return;
    const envs = [...res.environments].sort((a, b) => a.position - b.position);
    ui.env.replaceChildren(...envs.map((e) => el("option", { value: e.slug, title: e.name }, e.name === e.slug ? e.slug : `${e.slug} (${e.name})`)));
  } catch (err) {
    if (!scope.signal.aborted) report(err, "Listing environments failed");
    return;
  }
  await loadSecrets();
}

// ---- secrets ---------------------------------------------------------------------------------------------

function currentScope() {
  return { projectId: ui.project.value, environment: ui.env.value, secretPath: ui.path.value.trim() || "/" };
}

async function loadSecrets() {
  const s = session;
  const scope = currentScope();
  if (!s || !scope.projectId || !scope.environment) return;
  const generation = ++secretsGeneration;
  ui.secretsScope.textContent = `${scope.environment}:${scope.secretPath}`;
  show(ui.secretsStatus, "Loading…");
  try {
    // The server answers in pages bounded in count and size: follow them so the whole folder shows.
    const secrets: Secret[] = [];
    let pageToken = "";
    do {
      const page = await s.clients.secrets.listSecrets({ ...scope, includeImports: true, pageSize: 1000, pageToken });
      if (generation !== secretsGeneration || session !== s) return;
      secrets.push(...page.secrets);
      pageToken = page.nextPageToken;
    } while (pageToken);
    renderSecrets(secrets, scope);
    show(ui.appError, null);
    show(ui.secretsStatus, secrets.length === 0 ? "No secrets in this folder." : null);
  } catch (err) {
    if (generation !== secretsGeneration) return;
    ui.secretsBody.replaceChildren();
    const ce = ConnectError.from(err);
    if (ce.code === Code.NotFound) show(ui.secretsStatus, `Not found: ${ce.rawMessage}`);
    else {
      show(ui.secretsStatus, null);
      report(ce, "Listing secrets failed");
    }
  }
}

function renderSecrets(secrets: Secret[], scope: ReturnType<typeof currentScope>) {
  const rows = [...secrets]
    .sort((a, b) => a.key.localeCompare(b.key))
    .map((sec) => {
      // With include_imports a secret may live elsewhere; say where.
      const imported = sec.environment !== scope.environment || sec.secretPath !== scope.secretPath;
      return el(
        "tr",
        {
          "data-testid": "secret-row",
          "data-key": sec.key,
          ...(imported ? { "data-imported": `${sec.environment}:${sec.secretPath}` } : {}),
          title: sec.comment,
        },
        el("td", { "data-testid": "secret-key", class: "mono" }, sec.key,
          ...(imported ? [el("div", { class: "muted" }, `from ${sec.environment}:${sec.secretPath}`)] : [])),
        el("td", { "data-testid": "secret-value", class: "mono" }, sec.value),
        el("td", { "data-testid": "secret-version" }, String(sec.version)),
        el("td", { class: "muted" }, fmtTime(sec.updateTime ?? sec.createTime)),
      );
    });
  ui.secretsBody.replaceChildren(...rows);
}

// ---- live events -----------------------------------------------------------------------------------------

type EventsState = "idle" | "connecting" | "live" | "reconnecting" | "error";

function setEventsState(state: EventsState, text: string) {
  ui.eventsStatus.dataset.state = state;
  ui.eventsStatus.textContent = text;
  if (state !== "live") ui.eventsHeartbeat.textContent = "";
}

ui.eventsClear.addEventListener("click", () => ui.eventsBody.replaceChildren());

const MAX_EVENT_ROWS = 500;

/** Subscribes to every event of the project, reconnecting (resuming after the last cursor) until aborted. */
async function followEvents(s: Session, projectId: string, signal: AbortSignal) {
  let resumeAfter: string | undefined;
  let backoffMs = 500;
  while (!signal.aborted) {
    setEventsState(resumeAfter ? "reconnecting" : "connecting", resumeAfter ? "reconnecting…" : "connecting…");
    try {
      const stream = s.clients.events.subscribe(
        { projectId, registrations: [{ eventType: "*" }], resumeAfter },
        {
          signal,
          // Response headers come once the server has registered the subscription: from then on nothing is missed.
          onHeader: () => {
            if (!signal.aborted) setEventsState("live", "live");
          },
        },
      );
      for await (const res of stream) {
        backoffMs = 500;
        switch (res.message.case) {
          case "event":
            resumeAfter = res.message.value.cursor;
            setEventsState("live", "live");
            addEvent(res.message.value);
            refreshIfAffected(res.message.value);
            break;
          case "heartbeat":
            setEventsState("live", "live");
            ui.eventsHeartbeat.textContent = `Last heartbeat ${fmtTime(res.message.value.time)}.`;
            break;
          case "lagged":
            // The server ends the stream after this; resume where it says.
            resumeAfter = res.message.value.resumeAfter || resumeAfter;
            break;
        }
      }
      // The stream ended (lagged, server restart): go round and resubscribe.
    } catch (err) {
      if (signal.aborted) return;
      const ce = ConnectError.from(err);
      if (ce.code === Code.Unauthenticated) {
        report(ce, "Events");
        return;
      }
      if (ce.code === Code.PermissionDenied || ce.code === Code.NotFound || ce.code === Code.InvalidArgument) {
        setEventsState("error", `error: ${ce.rawMessage}`);
        return;
      }
      if (ce.code === Code.FailedPrecondition) resumeAfter = undefined; // cursor older than retention
      setEventsState("reconnecting", `disconnected (${Code[ce.code]}), retrying…`);
    }
    if (signal.aborted) return;
    await new Promise((r) => setTimeout(r, backoffMs));
    backoffMs = Math.min(backoffMs * 2, 10_000);
  }
}

function addEvent(ev: Event) {
  const shortType = ev.type.replace(/^secret:/, "");
  const typeClass = `type-${shortType}`;
  const refs =
    ev.secrets.length > 0
      ? ev.secrets.map((r) => ({ env: r.environment, path: r.secretPath, key: r.secretKey }))
      : [{ env: ev.importMutation?.environment ?? "", path: ev.importMutation?.secretPath ?? "", key: "" }];
  const actor = ev.actor?.name ?? "";
  // One row per secret the event touched (batch writes touch several), newest first.
  const rows = refs.map((r) =>
    el(
      "tr",
      {
        "data-testid": "event-row",
        "data-event-id": ev.id,
        "data-cursor": ev.cursor,
        "data-type": ev.type,
        "data-key": r.key,
        "data-actor": actor,
        title: `${fmtTime(ev.time)} by ${actor || "?"} (event ${ev.id})`,
        class: "fresh",
      },
      el("td", { "data-testid": "event-time", class: "muted nowrap" }, fmtClock(ev.time)),
      el("td", { "data-testid": "event-type", class: `${typeClass} nowrap` }, ev.type),
      el("td", { "data-testid": "event-env", class: "nowrap" }, r.env),
      el("td", { "data-testid": "event-path", class: "mono" }, r.path),
      el("td", { "data-testid": "event-key", class: "mono" }, r.key || (ev.importMutation ? "(imports)" : "")),
      el("td", { "data-testid": "event-cursor", class: "mono nowrap" }, ev.cursor),
    ),
  );
  ui.eventsBody.prepend(...rows);
  while (ui.eventsBody.childElementCount > MAX_EVENT_ROWS) ui.eventsBody.lastElementChild?.remove();
}

/** Reloads the secrets list when an event touched the folder on screen (or its imports). */
function refreshIfAffected(ev: Event) {
  const scope = currentScope();
  const here = (env: string, path: string) => env === scope.environment && path === scope.secretPath;
  const touched =
    ev.secrets.some((r) => here(r.environment, r.secretPath)) ||
    (ev.importMutation !== undefined && here(ev.importMutation.environment, ev.importMutation.secretPath));
  // Imported secrets can change from other folders too; a reload is cheap, so reload on any change then.
  if (touched || ui.secretsBody.querySelector("[data-imported]")) void loadSecrets();
}
