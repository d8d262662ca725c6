// The Identities & roles view: machine identities (a new one gets a client secret, shown once), the project
// roles of a project (who holds which, and giving one), and roles with a policy editor whose validation errors
// from the server are shown next to the policy and field they name.
import { ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ctx, session } from "./context";
import { $, button, el, errorText, field, formValues, nameWithId, onSubmit, show } from "./dom";
import { PolicySchema, type Identity, type Policy, type Role } from "./gen/hush/v1/identity_pb";

const view = $("view-access");

// ---- identities ------------------------------------------------------------------------------------------------

const identitiesBody = el("tbody", { "data-testid": "identities-body" });
const identityForm = el("form", { class: "inline-form", "data-testid": "identity-form" },
  el("input", { name: "name", required: "", placeholder: "ci-runner", "aria-label": "New identity name", "data-testid": "identity-name", autocomplete: "off" }),
  el("select", { name: "orgRole", "aria-label": "Org role", "data-testid": "identity-org-role" },
    el("option", { value: "" }, "no org role"), el("option", { value: "viewer" }, "org viewer"),
    el("option", { value: "member" }, "org member"), el("option", { value: "admin" }, "org admin")),
  el("button", { type: "submit", "data-testid": "identity-create" }, "Create identity"));
const identityError = el("p", { class: "error", role: "alert", "data-testid": "identity-error", hidden: "" });
/** The new client secret, shown once: never stored anywhere by the page. */
const secretBox = el("div", { class: "panel once", "data-testid": "client-secret-box", hidden: "" });

// ---- project roles ---------------------------------------------------------------------------------------------

const memberProject = el("select", { name: "project", "aria-label": "Project", "data-testid": "member-project" });
const memberIdentity = el("select", { name: "identity", "aria-label": "Identity", "data-testid": "member-identity" });
const memberRole = el("select", { name: "role", "aria-label": "Role", "data-testid": "member-role" });
const membersBody = el("tbody", { "data-testid": "members-body" });
const memberForm = el("form", { class: "inline-form", "data-testid": "member-form" },
  memberIdentity, memberRole, el("button", { type: "submit", "data-testid": "member-assign" }, "Give role"));
const memberError = el("p", { class: "error", role: "alert", "data-testid": "member-error", hidden: "" });

// ---- roles -----------------------------------------------------------------------------------------------------

const rolesList = el("ul", { class: "plain-list", "data-testid": "roles-list" });
const rolesError = el("p", { class: "error", role: "alert", "data-testid": "roles-error", hidden: "" });
const editor = el("form", { class: "panel", "data-testid": "role-editor", hidden: "" });
const editorError = el("p", { class: "error", role: "alert", "data-testid": "role-error", hidden: "" });
const policyRows = el("div", { class: "policies", "data-testid": "policy-rows" });
const SUBJECTS = ["secrets", "secret-folders", "secret-imports", "secret-events", "projects", "identities", "roles", "audit-logs", "audit-streams"];
const ACTIONS = ["read", "create", "edit", "delete", "subscribe"];
let editingRole: Role | null = null;

view.append(
  el("div", { class: "app" },
    el("section", { class: "card" },
      el("h2", {}, "Machine identities"),
      el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Org role"),
        el("th", { class: "wide-only" }, "Client id"))), identitiesBody)),
      el("h3", {}, "New identity"), identityForm, identityError, secretBox),
    el("section", { class: "card" },
      el("h2", {}, "Project roles"),
      field("Project", memberProject),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Identity"), el("th", {}, "Role"))), membersBody),
      el("h3", {}, "Give an identity a role in this project"), memberForm, memberError),
  ),
  el("section", { class: "card" },
    el("div", { class: "panel-head" }, el("h2", {}, "Roles"),
      button("New role", { class: "small", "data-testid": "role-new" }, () => openEditor(null))),
    rolesError, rolesList, editor),
);

/** Shows the view: identities, roles, and the selected project's members. */
export async function showAccess() {
  const chosen = memberProject.value;
  memberProject.replaceChildren(...ctx.projects.map((p) => el("option", { value: p.id }, nameWithId(p.name, p.id))));
  if (ctx.projects.some((p) => p.id === chosen)) memberProject.value = chosen;
  await Promise.all([loadIdentities(), loadRoles()]);
  await loadMembers();
}

async function all<T>(page: (token: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let token = "";
  do {
    const p = await page(token);
    out.push(...p.items);
    token = p.next;
  } while (token);
  return out;
}

let identities: Identity[] = [];
let roles: Role[] = [];

async function loadIdentities() {
  try {
    identities = await all(async (pageToken) => {
      const r = await session().clients.identity.listIdentities({ pageSize: 1000, pageToken });
      return { items: r.identities, next: r.nextPageToken };
    });
  } catch (err) {
    identitiesBody.replaceChildren();
    memberIdentity.replaceChildren();
    show(identityError, errorText(err));
    updateMemberForm();
    return;
  }
  identitiesBody.replaceChildren(...identities.map((i) =>
    el("tr", { "data-testid": "identity-row", "data-name": i.name },
      el("td", {}, i.name), el("td", {}, i.orgRole ? roleName(i.orgRole) : "—"),
      el("td", { class: "mono wide-only" }, i.clientId))));
  memberIdentity.replaceChildren(...identities.map((i) => el("option", { value: i.id }, i.name)));
  updateMemberForm();
}

function roleName(id: string): string {
  return roles.find((r) => r.id === id)?.name ?? id;
}

onSubmit(identityForm, identityError, async () => {
  const { name, orgRole } = formValues(identityForm);
  const ids = session().clients.identity;
  const created = await ids.createIdentity({ name: name.trim(), orgRole });
  const identity = created.identity!;
  const secret = await ids.createClientSecret({ identityId: identity.id, description: "created in the web console" });
  identityForm.reset();
  const copy = button("Copy as JSON", { class: "small", "data-testid": "client-secret-copy" }, async () => {
    await navigator.clipboard.writeText(JSON.stringify({ client_id: secret.clientId, client_secret: secret.clientSecret }));
  });
  secretBox.replaceChildren(
    el("h3", {}, `Client secret for ${identity.name}`),
    el("p", {}, "Shown only this once: keep it in your secret store now. ", el("code", {}, "hush login --from-file"), " reads the copied JSON."),
    el("dl", { class: "facts" },
      el("dt", {}, "Client id"), el("dd", { class: "mono", "data-testid": "new-client-id" }, secret.clientId),
      el("dt", {}, "Client secret"), el("dd", { class: "mono", "data-testid": "new-client-secret" }, secret.clientSecret)),
    el("div", { class: "toolbar" }, copy, button("Done", { class: "small secondary", "data-testid": "client-secret-done" }, () => {
      secretBox.replaceChildren();
      secretBox.hidden = true;
    })),
  );
  secretBox.hidden = false;
  await loadIdentities();
});

// ---- members ---------------------------------------------------------------------------------------------------

memberProject.addEventListener("change", () => void loadMembers());

async function loadMembers() {
  const projectId = memberProject.value;
  if (!projectId) {
    membersBody.replaceChildren();
    return;
  }
  try {
    const members = await all(async (pageToken) => {
      const r = await session().clients.identity.listProjectMembers({ projectId, pageSize: 1000, pageToken });
      return { items: r.members, next: r.nextPageToken };
    });
    membersBody.replaceChildren(...(members.length
      ? members.map((m) => el("tr", { "data-testid": "member-row", "data-name": m.identityName, "data-role": m.roleName },
        el("td", {}, m.identityName), el("td", {}, m.roleName,
          " ", button("Remove", { class: "small danger", "aria-label": `Remove ${m.identityName}` }, async () => {
            if (confirm(`Remove ${m.identityName}'s ${m.roleName} role in this project?`)) await assign(m.identityId, "");
          }))))
      : [el("tr", {}, el("td", { class: "muted", colspan: "2" }, "No members: org admins see every project; give others a role below."))]));
    show(memberError, null);
  } catch (err) {
    membersBody.replaceChildren();
    show(memberError, errorText(err));
  }
}

async function assign(identityId: string, roleId: string) {
  try {
    await session().clients.identity.setProjectRole({ projectId: memberProject.value, identityId, roleId });
    await loadMembers();
  } catch (err) {
    show(memberError, errorText(err));
  }
}

onSubmit(memberForm, memberError, async () => {
  const { identity, role } = formValues(memberForm);
  await session().clients.identity.setProjectRole({ projectId: memberProject.value, identityId: identity, roleId: role });
  await loadMembers();
});

// ---- roles -----------------------------------------------------------------------------------------------------

async function loadRoles() {
  try {
    roles = await all(async (pageToken) => {
      const r = await session().clients.identity.listRoles({ pageSize: 1000, pageToken });
      return { items: r.roles, next: r.nextPageToken };
    });
  } catch (err) {
    rolesList.replaceChildren();
    show(rolesError, errorText(err));
    updateMemberForm();
    return;
  }
  show(rolesError, null);
  rolesList.replaceChildren(...roles.map((r) =>
    el("li", { "data-testid": "role-item", "data-name": r.name },
      el("strong", {}, r.name), " ", el("span", { class: "muted" }, r.builtIn ? "built-in" : r.description || "custom"), " ",
      r.builtIn ? "" : button("Edit", { class: "small", "data-testid": "role-edit", "aria-label": `Edit role ${r.name}` }, () => openEditor(r)))));
  memberRole.replaceChildren(...roles.map((r) => el("option", { value: r.id }, r.name)));
  updateMemberForm();
}

/** Giving a role needs an identity and a role to choose from. */
function updateMemberForm() {
  const assign = memberForm.querySelector<HTMLButtonElement>("button[type=submit]")!;
  assign.disabled = memberIdentity.options.length === 0 || memberRole.options.length === 0 || !memberProject.value;
}

function policyRow(p: Policy | null): HTMLElement {
  const subject = el("select", { name: "subject", "aria-label": "Subject" }, ...SUBJECTS.map((s) => el("option", { value: s }, s)));
  subject.value = p?.subject ?? "secrets";
  const actions = el("input", { name: "actions", value: (p?.actions ?? ["read"]).join(", "), "aria-label": "Actions", title: ACTIONS.join(", "), spellcheck: "false" });
  const envs = el("input", { name: "environments", value: (p?.conditions?.environments ?? []).join(", "), placeholder: "any environment", "aria-label": "Environments", spellcheck: "false" });
  const path = el("input", { name: "secretPath", value: p?.conditions?.secretPath ?? "", placeholder: "any path (/api/**)", "aria-label": "Path glob", spellcheck: "false" });
  const events = el("input", { name: "eventTypes", value: (p?.conditions?.eventTypes ?? []).join(", "), placeholder: "all event types", "aria-label": "Event types (secret-events only)", title: "secret-events only: secret:create, secret:update, secret:delete, secret:import-mutation", spellcheck: "false" });
  const inverted = el("input", { type: "checkbox", name: "inverted", "aria-label": "Deny" });
  inverted.checked = p?.inverted ?? false;
  const row: HTMLDivElement = el("div", { class: "policy", "data-testid": "policy-row" },
    subject, actions, envs, path, events, el("label", { class: "check" }, inverted, "deny"),
    button("✕", { class: "small secondary", "aria-label": "Remove this policy" }, (): void => row.remove()),
    el("p", { class: "error field-error", role: "alert", "data-testid": "policy-error", hidden: "" }));
  return row;
}

function openEditor(role: Role | null) {
  editingRole = role;
  show(editorError, null);
  policyRows.replaceChildren(...(role?.policies.length ? role.policies.map(policyRow) : [policyRow(null)]));
  editor.replaceChildren(
    el("h3", {}, role ? `Edit role ${role.name}` : "New role"),
    field("Name", el("input", { name: "name", value: role?.name ?? "", required: "", "data-testid": "role-name", autocomplete: "off" })),
    field("Description", el("input", { name: "description", value: role?.description ?? "", autocomplete: "off" })),
    el("p", { class: "hint" }, `Each policy: subject, actions (${ACTIONS.join(", ")}), environments (comma-separated, empty = all), path glob, event types (secret-events only, empty = all), deny.`),
    policyRows,
    el("div", { class: "toolbar" },
      button("Add policy", { class: "small secondary", "data-testid": "policy-add" }, () => policyRows.append(policyRow(null))),
      button("Cancel", { class: "small secondary" }, () => { editor.hidden = true; }),
      el("button", { type: "submit", "data-testid": "role-save" }, "Save role")),
    editorError);
  editor.hidden = false;
}

function readPolicies(): Policy[] {
  return [...policyRows.querySelectorAll<HTMLElement>("[data-testid=policy-row]")].map((row) => {
    const value = (name: string) => (row.querySelector(`[name=${name}]`) as HTMLInputElement).value;
    const list = (name: string) => value(name).split(",").map((s) => s.trim()).filter(Boolean);
    return create(PolicySchema, {
      subject: value("subject"),
      actions: list("actions"),
      conditions: { environments: list("environments"), secretPath: value("secretPath").trim(), eventTypes: list("eventTypes") },
      inverted: (row.querySelector("[name=inverted]") as HTMLInputElement).checked,
    });
  });
}

/** Puts a server error naming `policies[i].field` next to that policy (and marks the field); else below. */
function showPolicyError(err: unknown) {
  const message = ConnectError.from(err).rawMessage;
  const match = /policies\[(\d+)\]\.(\w+)/.exec(message);
  const rows = policyRows.querySelectorAll<HTMLElement>("[data-testid=policy-row]");
  const row = match ? rows[Number(match[1])] : undefined;
  if (!row) {
    show(editorError, errorText(err));
    return;
  }
  const conditionField = message.includes("secret_path") ? "secretPath" : message.includes("event type") ? "eventTypes" : "environments";
  const name = { subject: "subject", actions: "actions", conditions: conditionField }[match![2]];
  const input = name ? row.querySelector<HTMLElement>(`[name=${name}]`) : null;
  input?.setAttribute("aria-invalid", "true");
  input?.focus();
  show(row.querySelector<HTMLElement>("[data-testid=policy-error]")!, message);
}

editor.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  show(editorError, null);
  editor.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
  editor.querySelectorAll<HTMLElement>("[data-testid=policy-error]").forEach((n) => show(n, null));
  const { name, description } = formValues(editor);
  const policies = readPolicies();
  try {
    const ids = session().clients.identity;
    if (editingRole) await ids.updateRole({ roleId: editingRole.id, name: name.trim(), description, policies });
    else await ids.createRole({ name: name.trim(), description, policies });
    editor.hidden = true;
    await loadRoles();
  } catch (err) {
    showPolicyError(err);
  }
});
