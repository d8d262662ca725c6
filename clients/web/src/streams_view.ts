// The Audit streams view: every stream with its delivery status (last success, last error, lag, drops, paused),
// a form to add a custom HTTPS destination, and test, backfill and delete per stream.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { session } from "./context";
import { $, button, el, errorText, field, fmtTime, formValues, onSubmit, show } from "./dom";
import { AuditStreamFailureMode, type AuditStream, type AuditStreamStatus } from "./gen/hush/v1/audit_streams_pb";

const view = $("view-streams");

const form = el("form", { class: "filters", "data-testid": "stream-form" },
  field("Name", el("input", { name: "name", required: "", "data-testid": "stream-name", autocomplete: "off" })),
  field("Endpoint URL", el("input", { name: "url", type: "url", required: "", placeholder: "https://siem.example.com/ingest", "data-testid": "stream-url" })),
  field("Header name", el("input", { name: "headerName", placeholder: "Authorization", "data-testid": "stream-header-name", autocomplete: "off" })),
  field("Header value (write-only)", el("input", { name: "headerValue", type: "password", "data-testid": "stream-header-value", autocomplete: "off" })),
  field("When the destination keeps failing", el("select", { name: "onFailure", "data-testid": "stream-on-failure" },
    el("option", { value: "drop" }, "drop after the retries"), el("option", { value: "pause" }, "pause until accepted"))),
  el("div", { class: "row-buttons" }, el("button", { type: "submit", "data-testid": "stream-create" }, "Add stream")),
);
const formError = el("p", { class: "error", role: "alert", "data-testid": "stream-form-error", hidden: "" });
const status = el("p", { class: "muted", "data-testid": "streams-status" });
const list = el("div", { class: "stream-list", "data-testid": "stream-list" });

view.append(
  el("section", { class: "card" },
    el("div", { class: "panel-head" }, el("h2", {}, "Audit streams"),
      button("Refresh", { class: "small secondary", "data-testid": "streams-refresh" }, () => showStreams())),
    el("p", { class: "hint" }, "Every new audit entry of the org goes to each stream, in batches, retried with backoff."),
    status, list),
  el("section", { class: "card" }, el("h2", {}, "Add a custom HTTPS stream"),
    el("p", { class: "hint" }, "A test entry is sent first; the stream is created only if the destination accepts it. "
      + "The header value is never shown again (it reads [REDACTED])."),
    form, formError),
);

onSubmit(form, formError, async () => {
  const v = formValues(form);
  const headers: Record<string, string> = {};
  if (v.headerName.trim()) headers[v.headerName.trim()] = v.headerValue;
  await session().clients.streams.createAuditStream({
    name: v.name.trim(),
    onFailure: v.onFailure === "pause" ? AuditStreamFailureMode.PAUSE : AuditStreamFailureMode.DROP,
    provider: { case: "custom", value: { url: v.url.trim(), headers, batch: true } },
  });
  form.reset();
  await showStreams();
});

export async function showStreams() {
  try {
    const streams: AuditStream[] = [];
    let pageToken = "";
    do {
      const page = await session().clients.streams.listAuditStreams({ pageSize: 100, pageToken });
      streams.push(...page.auditStreams);
      pageToken = page.nextPageToken;
    } while (pageToken);
    const cards = await Promise.all(streams.map(async (st) => card(st, await statusOf(st.id))));
    list.replaceChildren(...cards);
    status.textContent = streams.length ? "" : "No streams yet: add one below to send the audit log to your SIEM.";
  } catch (err) {
    list.replaceChildren();
    status.textContent = `Listing streams failed: ${errorText(err)}`;
  }
}

async function statusOf(id: string): Promise<AuditStreamStatus | undefined> {
  try {
    return (await session().clients.streams.getAuditStreamStatus({ auditStreamId: id })).status;
  } catch {
    return undefined;
  }
}

function destination(st: AuditStream): string {
  const p = st.provider;
  switch (p.case) {
    case "custom": return `custom → ${p.value.url}`;
    case "datadog": return `Datadog (${p.value.site || p.value.url})`;
    case "splunk": return `Splunk HEC → ${p.value.host}`;
    case "cribl": return `Cribl → ${p.value.url}`;
    case "azure": return `Azure Monitor → ${p.value.dceUrl}`;
    default: return "?";
  }
}

function card(st: AuditStream, s: AuditStreamStatus | undefined): HTMLElement {
  const lag = s?.cursorLag ? Number(s.cursorLag.seconds) + s.cursorLag.nanos / 1e9 : 0;
  const result = el("p", { class: "muted", "data-testid": "stream-result", role: "status" });
  const since = el("input", { type: "number", min: "1", value: "24", "aria-label": "Backfill hours", class: "narrow" });
  const headers = st.provider.case === "custom" ? Object.keys(st.provider.value.headers) : [];
  const facts: [string, string][] = [
    ...(headers.length ? [["Headers", headers.map((h) => `${h}: [REDACTED]`).join(", ")] as [string, string]] : []),
    ["Delivered", String(s?.deliveredEvents ?? "?")],
    ["Queue", String(s?.queueDepth ?? "?")],
    ["Lag", `${lag.toFixed(1)} s`],
    ["Last success", fmtTime(s?.lastSuccessTime) || "never"],
    ["Last error", s?.lastError ? `${s.lastError} (${fmtTime(s.lastErrorTime)})` : "none"],
    ["Dropped", `${s?.droppedBatches ?? 0} batches, ${s?.droppedEvents ?? 0} entries`],
    ["State", s?.paused ? `paused since ${fmtTime(s.pauseTime)}` : "delivering"],
  ];
  return el("article", { class: "stream", "data-testid": "stream-card", "data-name": st.name, "data-id": st.id },
    el("div", { class: "panel-head" }, el("h3", {}, st.name), el("span", { class: "muted mono" }, destination(st))),
    el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)])),
    el("div", { class: "toolbar" },
      button("Send test", { class: "small", "data-testid": "stream-test" }, async () => {
        try {
          const r = await session().clients.streams.testAuditStream({ auditStreamId: st.id });
          show(result, r.success ? `Test delivered: HTTP ${r.statusCode}` : `Test failed: ${r.statusCode || ""} ${r.message}`);
        } catch (err) {
          show(result, errorText(err));
        }
      }),
      el("span", { class: "inline" }, "Backfill last ", since, " h"),
      button("Backfill", { class: "small secondary", "data-testid": "stream-backfill" }, async () => {
        const hours = Number(since.value);
        if (!Number.isInteger(hours) || hours < 1 || hours > 24 * 366) {
          show(result, "Backfill: give a whole number of hours from 1 to 8784.");
          return;
        }
        try {
          const r = await session().clients.streams.backfillAuditStream({
            auditStreamId: st.id,
            startTime: timestampFromDate(new Date(Date.now() - hours * 3_600_000)),
          });
          show(result, `Queued ${r.queuedEvents} entries for delivery.`);
        } catch (err) {
          show(result, errorText(err));
        }
      }),
      button("Delete", { class: "small danger", "data-testid": "stream-delete" }, async () => {
        if (!confirm(`Delete stream ${st.name}? Entries stop going there.`)) return;
        try {
          await session().clients.streams.deleteAuditStream({ auditStreamId: st.id });
          await showStreams();
        } catch (err) {
          show(result, errorText(err));
        }
      }),
    ),
    result,
  );
}
