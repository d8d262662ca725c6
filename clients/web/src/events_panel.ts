// The live events panel: every event of the selected project over Subscribe (grpc-web server stream), resumed
// after the last cursor on disconnects; each event is also handed to the secrets view, which marks and reloads
// what changed.
import { Code, ConnectError } from "@connectrpc/connect";
import { report, type Session } from "./context";
import { $, el, fmtClock, fmtTime } from "./dom";
import type { Event } from "./gen/hush/v1/events_pb";

const ui = {
  status: $("events-status"),
  heartbeat: $("events-heartbeat"),
  body: $("events-body"),
  clear: $<HTMLButtonElement>("events-clear"),
};

/** A secret (or a folder's imports, key empty) an event changed. */
export interface Changed {
  environment: string;
  secretPath: string;
  key: string;
  /** create, update, delete or import. */
  what: string;
}

type State = "idle" | "connecting" | "live" | "reconnecting" | "error";

export function setEventsState(state: State, text: string) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  if (state !== "live") ui.heartbeat.textContent = "";
}

export function clearEvents() {
  ui.body.replaceChildren();
  setEventsState("idle", "idle");
}

ui.clear.addEventListener("click", () => ui.body.replaceChildren());

const MAX_EVENT_ROWS = 500;

/** Subscribes to every event of the project, reconnecting (resuming after the last cursor) until aborted. */
export async function followEvents(s: Session, projectId: string, signal: AbortSignal, onChange: (c: Changed[]) => void) {
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
            onChange(changes(res.message.value));
            break;
          case "heartbeat":
            setEventsState("live", "live");
            ui.heartbeat.textContent = `Last heartbeat ${fmtTime(res.message.value.time)}.`;
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

function changes(ev: Event): Changed[] {
  const what = ev.type.replace(/^secret:/, "").replace("import-mutation", "import");
  if (ev.secrets.length > 0) {
    return ev.secrets.map((r) => ({ environment: r.environment, secretPath: r.secretPath, key: r.secretKey, what }));
  }
  const m = ev.importMutation;
  return m ? [{ environment: m.environment, secretPath: m.secretPath, key: "", what }] : [];
}

function addEvent(ev: Event) {
  const typeClass = `type-${ev.type.replace(/^secret:/, "")}`;
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
      el("td", { class: "muted nowrap" }, el("span", { "data-testid": "event-time" }, fmtClock(ev.time)), el("br"),
        "#", el("span", { "data-testid": "event-cursor", class: "mono" }, ev.cursor)),
      el("td", { "data-testid": "event-type", class: typeClass }, ev.type.replace("import-mutation", "imports")),
      el("td", { class: "mono" },
        el("div", { "data-testid": "event-key", class: "event-key" }, r.key || (ev.importMutation ? "(imports)" : "")),
        el("div", { class: "muted" }, el("span", { "data-testid": "event-env" }, r.env), ":",
          el("span", { "data-testid": "event-path" }, r.path))),
    ),
  );
  ui.body.prepend(...rows);
  while (ui.body.childElementCount > MAX_EVENT_ROWS) ui.body.lastElementChild?.remove();
}
