// The hush web console: sign in with a machine identity, then four views over grpc-web on the same `hush serve`
// port: secrets (with live events), the audit log, audit streams, and identities & roles. The token lives in
// memory only (a reload signs out); no secret value is ever written to storage or the console.
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { showAccess } from "./access_view";
import { bearerAuth, hushClients } from "./api";
import { showAudit } from "./audit_view";
import { clearError, ctx, report, session } from "./context";
import { $, errorText, shortId, show } from "./dom";
import { resetSecretsView, showProjects } from "./secrets_view";
import { showStreams } from "./streams_view";

const ui = {
  tabs: $("tabs"),
  session: $("session"),
  sessionInfo: $("session-info"),
  logout: $<HTMLButtonElement>("logout-button"),
  loginView: $("login-view"),
  loginForm: $<HTMLFormElement>("login-form"),
  serverUrl: $<HTMLInputElement>("server-url"),
  clientId: $<HTMLInputElement>("client-id"),
  clientSecret: $<HTMLInputElement>("client-secret"),
  loginButton: $<HTMLButtonElement>("login-button"),
  loginError: $("login-error"),
  appView: $("app-view"),
};

// Only where to sign in is remembered (the server and the client id, neither a secret), for the next visit.
const STORE_SERVER = "hush.server";
const STORE_CLIENT_ID = "hush.clientId";

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
  const s = ctx.session;
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
    const res = await clients.identity.login({ clientId: ui.clientId.value.trim(), clientSecret: ui.clientSecret.value });
    token = res.accessToken;
    ctx.session = { server, token, identityId: res.identityId, clients };
    localStorage.setItem(STORE_SERVER, server);
    localStorage.setItem(STORE_CLIENT_ID, ui.clientId.value.trim());
    ui.clientSecret.value = "";
    ui.sessionInfo.textContent = server;
    ui.session.hidden = false;
    ui.tabs.hidden = false;
    ui.loginView.hidden = true;
    ui.appView.hidden = false;
    clearError();
    await Promise.all([whoAmI(), loadProjects()]);
    await selectView("secrets");
  } catch (err) {
    const text = errorText(err);
    // A browser says only "Failed to fetch" for a server it cannot reach (or whose certificate it refuses).
    const unreachable = /failed to fetch|networkerror|load failed/i.test(text);
    show(ui.loginError, unreachable ? `Sign-in failed: cannot reach ${server} (is hush running there, with this scheme and port?)` : `Sign-in failed: ${text}`);
  } finally {
    ui.loginButton.disabled = false;
  }
}

/** The header names who is signed in: the identity's name and its org (the token alone says neither). */
async function whoAmI() {
  const s = session();
  try {
    const me = await s.clients.identity.whoAmI({});
    const name = me.identity?.name ?? "?";
    const org = shortId(me.identity?.orgId ?? "");
    ui.sessionInfo.textContent = `${name} · org ${org} · ${s.server}`;
    ui.sessionInfo.title = `identity ${me.identity?.id}, org ${me.identity?.orgId}, role ${me.identity?.orgRole || "none"}`;
  } catch (err) {
    report(err, "Reading who is signed in failed");
  }
}

async function loadProjects() {
  const s = session();
  const projects = [];
  let pageToken = "";
  try {
    do {
      const page = await s.clients.projects.listProjects({ pageSize: 1000, pageToken });
      projects.push(...page.projects);
      pageToken = page.nextPageToken;
    } while (pageToken);
  } catch (err) {
    report(err, "Listing projects failed");
  }
  if (ctx.session === s) ctx.projects = projects;
}

/** Back to the login form, with an optional reason (e.g. an expired token). */
function signOut(reason: string | null) {
  ctx.session = null;
  ctx.projects = [];
  resetSecretsView();
  ui.session.hidden = true;
  ui.tabs.hidden = true;
  ui.appView.hidden = true;
  ui.loginView.hidden = false;
  clearError();
  show(ui.loginError, reason);
}
ctx.signOut = signOut;

// ---- tabs --------------------------------------------------------------------------------------------------

type View = "secrets" | "audit" | "streams" | "access";
const SHOW: Record<View, () => Promise<void>> = {
  secrets: showProjects,
  audit: showAudit,
  streams: showStreams,
  access: showAccess,
};
let current: View | null = null;

async function selectView(view: View) {
  const firstVisit = current !== view;
  current = view;
  for (const tab of ui.tabs.querySelectorAll<HTMLButtonElement>("[role=tab]")) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`view-${tab.dataset.view}`).hidden = !selected;
  }
  clearError();
  // The secrets view keeps its folder and its live subscription when you come back to it.
  if (view !== "secrets" || firstVisit) await SHOW[view]();
}

ui.tabs.addEventListener("click", (ev) => {
  const tab = (ev.target as HTMLElement).closest<HTMLButtonElement>("[role=tab]");
  if (tab?.dataset.view && ctx.session) void selectView(tab.dataset.view as View);
});

// Arrow keys, Home and End move between tabs, as in any tab list.
ui.tabs.addEventListener("keydown", (ev) => {
  const tabs = [...ui.tabs.querySelectorAll<HTMLButtonElement>("[role=tab]")];
  const at = tabs.findIndex((t) => t.getAttribute("aria-selected") === "true");
  const to: Record<string, number> = { ArrowRight: at + 1, ArrowLeft: at + tabs.length - 1, Home: 0, End: tabs.length - 1 };
  if (!(ev.key in to)) return;
  ev.preventDefault();
  const next = tabs[to[ev.key] % tabs.length];
  next.focus();
  void selectView(next.dataset.view as View);
});
