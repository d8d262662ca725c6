// The Audit log view: ListAuditLogs with its filters (event types, actor, project, user agent type, time range),
// newest first, page by page; Export downloads the same filter as NDJSON from the HTTP export.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ctx, session } from "./context";
import { $, button, el, errorText, field, fmtTime, formValues, nameWithId, onSubmit, show } from "./dom";
import { AuditLogFilterSchema, type AuditLog, type AuditLogFilter } from "./gen/hush/v1/audit_logs_pb";
import { ActorType } from "./gen/hush/v1/common_pb";

const view = $("view-audit");
const PAGE_SIZE = 50;
const USER_AGENT_TYPES = ["cli", "web", "curl", "grpc-python", "grpc-other", "other"];

const projectSelect = el("select", { name: "project", "data-testid": "audit-project" });
const form = el("form", { class: "filters", "data-testid": "audit-filters" },
  field("Event types", el("input", { name: "events", placeholder: "get-secret, create-secret", "data-testid": "audit-events", spellcheck: "false" })),
  field("Actor id", el("input", { name: "actor", placeholder: "identity id", "data-testid": "audit-actor", spellcheck: "false" })),
  field("Actor type", el("select", { name: "actorType", "data-testid": "audit-actor-type" },
    el("option", { value: "" }, "any"), el("option", { value: "identity" }, "identity"),
    el("option", { value: "platform" }, "platform"), el("option", { value: "unknownUser" }, "unknown user"))),
  field("Project", projectSelect),
  field("Client", el("select", { name: "userAgentType", "data-testid": "audit-agent" },
    el("option", { value: "" }, "any"), ...USER_AGENT_TYPES.map((t) => el("option", { value: t }, t)))),
  field("Since", el("input", { name: "since", type: "datetime-local", step: "1", "data-testid": "audit-since" })),
  field("Until", el("input", { name: "until", type: "datetime-local", step: "1", "data-testid": "audit-until" })),
  el("div", { class: "row-buttons" },
    el("button", { type: "submit", "data-testid": "audit-apply" }, "Apply"),
  ),
);
const error = el("p", { class: "error", role: "alert", "data-testid": "audit-error", hidden: "" });
const status = el("p", { class: "muted", "data-testid": "audit-status" });
const body = el("tbody", { "data-testid": "audit-body" });
const newer = button("← Newer", { class: "secondary", "data-testid": "audit-newer" }, () => page(-1));
const older = button("Older →", { class: "secondary", "data-testid": "audit-older" }, () => page(1));
const exportButton = button("Export NDJSON", { class: "secondary", "data-testid": "audit-export" }, () => exportNdjson());

view.append(
  el("section", { class: "card" },
    el("h2", {}, "Audit log"),
    form, error,
    el("div", { class: "toolbar" }, newer, older, exportButton),
    status,
    el("div", { class: "scroll" }, el("table", { class: "audit" },
      el("thead", {}, el("tr", {}, el("th", { style: "width: 11em" }, "Time"), el("th", { style: "width: 12em" }, "Event"),
        el("th", {}, "Actor"), el("th", { class: "wide-only" }, "Client"), el("th", { class: "wide-only" }, "Project"), el("th", {}, "Details"))),
      body)),
  ),
);

/** Page tokens of the pages shown so far: [0] is the first page (""), the last is the one on screen. */
let tokens: string[] = [""];
let nextToken = "";

function filter(): AuditLogFilter {
  const v = formValues(form);
  const time = (local: string) => (local ? timestampFromDate(new Date(local)) : undefined);
  return create(AuditLogFilterSchema, {
    eventTypes: v.events.split(",").map((t) => t.trim()).filter(Boolean),
    actorType: { identity: ActorType.IDENTITY, platform: ActorType.PLATFORM, unknownUser: ActorType.UNKNOWN_USER }[v.actorType]
      ?? ActorType.UNSPECIFIED,
    actorId: v.actor.trim(),
    projectId: v.project,
    userAgentType: v.userAgentType,
    startTime: time(v.since),
    endTime: time(v.until),
  });
}

/** Shows the audit view: refreshes the project choices and the first page. */
export async function showAudit() {
  const chosen = projectSelect.value;
  projectSelect.replaceChildren(el("option", { value: "" }, "any"),
    ...ctx.projects.map((p) => el("option", { value: p.id }, nameWithId(p.name, p.id))));
  projectSelect.value = chosen;
  tokens = [""];
  await load();
}

onSubmit(form, error, async () => {
  tokens = [""];
  await load(true);
});

async function page(direction: 1 | -1) {
  if (direction === 1 && nextToken) tokens.push(nextToken);
  if (direction === -1 && tokens.length > 1) tokens.pop();
  await load();
}

async function load(rethrow = false) {
  show(error, null);
  try {
    const res = await session().clients.audit.listAuditLogs({ filter: filter(), pageSize: PAGE_SIZE, pageToken: tokens[tokens.length - 1] });
    nextToken = res.nextPageToken;
    body.replaceChildren(...res.auditLogs.map(row));
    const first = (tokens.length - 1) * PAGE_SIZE;
    status.textContent = res.auditLogs.length
      ? `Entries ${first + 1}–${first + res.auditLogs.length}, newest first.`
      : "No entries match these filters.";
    newer.disabled = tokens.length <= 1;
    older.disabled = !nextToken;
  } catch (err) {
    body.replaceChildren();
    status.textContent = "";
    newer.disabled = true;
    older.disabled = true;
    if (rethrow) throw err;
    show(error, errorText(err));
  }
}

function row(log: AuditLog): HTMLTableRowElement {
  const meta = log.eventMetadata ? JSON.stringify(log.eventMetadata) : "";
  const project = ctx.projects.find((p) => p.id === log.projectId);
  return el("tr", { "data-testid": "audit-row", "data-event": log.eventType },
    el("td", { class: "muted nowrap" }, fmtTime(log.createTime)),
    el("td", { "data-testid": "audit-event", class: "mono" }, log.eventType),
    el("td", { title: log.actor?.identityId }, log.actor?.name || log.actor?.identityId || "—"),
    el("td", { class: "wide-only" }, log.userAgentType),
    el("td", { class: "wide-only" }, project ? project.name : log.projectId ? log.projectId.slice(0, 8) : ""),
    el("td", { class: "mono small-text", "data-testid": "audit-details" }, meta),
  );
}

/** Downloads every entry the filter matches from the HTTP NDJSON export (same filter, oldest first). */
async function exportNdjson() {
  const s = session();
  const f = filter();
  const query = new URLSearchParams();
  if (f.eventTypes.length) query.set("eventType", f.eventTypes.join(","));
  const v = formValues(form);
  if (v.actorType) query.set("actorType", v.actorType);
  if (f.actorId) query.set("actorId", f.actorId);
  if (f.projectId) query.set("projectId", f.projectId);
  if (f.userAgentType) query.set("userAgentType", f.userAgentType);
  if (v.since) query.set("since", new Date(v.since).toISOString());
  if (v.until) query.set("until", new Date(v.until).toISOString());
  show(error, null);
  const res = await fetch(`${s.server}/api/v1/audit-logs/export?${query}`, { headers: { authorization: `Bearer ${s.token}` } });
  if (!res.ok) {
    // The export answers errors as {"code", "message"}.
    const text = await res.text();
    let message = text;
    try {
      message = JSON.parse(text).message ?? text;
    } catch {
      // not JSON: shown as it is
    }
    show(error, `Export failed (HTTP ${res.status}): ${message}`);
    return;
  }
  const blob = await res.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: `hush-audit-${new Date().toISOString().slice(0, 19)}.ndjson` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
