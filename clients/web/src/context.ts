// What every view shares: the signed-in session, the org's projects, and how errors are reported.
import { ConnectError, Code } from "@connectrpc/connect";
import type { HushClients } from "./api";
import { $, errorText, show } from "./dom";
import type { Project } from "./gen/hush/v1/projects_pb";

export interface Session {
  server: string;
  /** Kept in memory only: a reload signs out. */
  token: string;
  identityId: string;
  clients: HushClients;
}

type SignOut = (reason: string | null) => void;

export const ctx = {
  session: null as Session | null,
  /** The projects the caller can see, in creation order. */
  projects: [] as Project[],
  signOut: (() => undefined) as SignOut,
};

/** Shows an error in the page's banner; an unauthenticated one (expired or revoked token) signs out. */
export function report(err: unknown, what: string) {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unauthenticated) {
    ctx.signOut(`Session ended (${ce.rawMessage}); sign in again.`);
    return;
  }
  show($("app-error"), `${what}: ${errorText(ce)}`);
}

export function clearError() {
  show($("app-error"), null);
}

/** The session, or an error when signed out (views only run while signed in). */
export function session(): Session {
  if (!ctx.session) throw new Error("signed out");
  return ctx.session;
}
