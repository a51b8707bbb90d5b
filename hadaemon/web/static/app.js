// hadaemon console: the pages, drawn from /api/status and kept live by /api/events (Server-Sent
// Events from the daemons' D-Bus signals). Plain JavaScript, no framework, nothing fetched from outside.
"use strict";
const meta = (n) => document.querySelector(`meta[name="${n}"]`).content;
const CSRF = meta("csrf-token");
const CAN = meta("can-change") === "1";
let S = null;            // the latest snapshot
let current = null;      // {update(S)} of the page shown

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined && kid !== false)
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}
const state = (s) => h("span", {class: `state s-${s}`}, s);
const link = (href, text) => h("a", {href}, text);
const td = (label, ...kids) => h("td", {"data-label": label}, ...kids);
const val = (f, name) => f.elements.namedItem(name).value;

async function api(method, path, body) {
  const opts = {method, headers: {"X-CSRF-Token": CSRF}, credentials: "same-origin"};
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  let r;
  try { r = await fetch(path, opts); } catch (e) { return {ok: false, status: 0, data: {error: "ha-web is not reachable: " + e}}; }
  if (r.status === 401) { location.href = "/login"; return {ok: false, status: 401, data: {error: "logged out"}}; }
  const type = r.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await r.json() : await r.text();
  return {ok: r.ok, status: r.status, data};
}

// A form whose submit calls the API; errors shown beside the field they name, or under the form.
function actionForm(cls, build, submit) {
  const err = h("p", {class: "error", role: "alert"});
  const done = h("p", {class: "done", role: "status"});
  const form = h("form", {class: cls}, build, err, done);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const e of form.querySelectorAll(".field-error")) e.remove();
    for (const e of form.querySelectorAll(".invalid")) e.classList.remove("invalid");
    err.textContent = ""; done.textContent = "";
    const btn = ev.submitter || form.querySelector("button");
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    let res;
    try { res = await submit(form, btn); } finally { for (const b of form.querySelectorAll("button")) b.disabled = !CAN; }
    if (!res) return;
    if (res.ok) { done.textContent = res.message || "Done" + (res.data && res.data.result ? ` (CIB ${res.data.result[res.data.result.length - 1]})` : "."); return; }
    const msg = (res.data && res.data.error) || String(res.data);
    const field = res.data && res.data.field && form.querySelector(`[data-field="${CSS.escape(res.data.field)}"]`);
    if (field) {
      field.classList.add("invalid");
      field.closest("label").append(h("span", {class: "field-error", role: "alert"}, msg));
    } else err.textContent = msg;
  });
  if (!CAN) for (const b of form.querySelectorAll("button")) { b.disabled = true; b.title = "read only: not in group haclient"; }
  return form;
}
const crm = (action, body) => api("POST", "/api/crm/" + action, body);
const nodesOf = () => Object.keys((S && S.crm && S.crm.nodes) || {}).sort();
const nodeSelect = (name, blank) => h("select", {name, "data-field": name},
  blank !== undefined ? h("option", {value: ""}, blank) : null, nodesOf().map((n) => h("option", {value: n}, n)));

// ---- pages -------------------------------------------------------------------------------------------
function overview() {
  const live = h("div");
  return {title: "Cluster", el: h("div", {}, h("h1", {}, "Cluster"), live), update(S) {
    const c = S.crm;
    live.replaceChildren();
    if (!c) { live.append(h("p", {class: "card"}, "No CRM status: ha-crmd is not on the bus.")); }
    else {
      live.append(h("div", {class: "card summary", id: "summary"},
        h("div", {}, "DC: ", h("strong", {id: "dc"}, c.dc || "none"), c.quorum ? " — partition with quorum" : " — partition WITHOUT quorum"),
        h("div", {class: "muted"}, `CIB ${c.cib_epoch} · transition ${c.transition ? c.transition.id + " (" + c.transition.state + ")" : "-"} · local node ${c.local_node}`)));
      const hb = S.heartbeat ? S.heartbeat.nodes : {};
      live.append(h("div", {class: "card"}, h("h2", {}, "Nodes"), h("table", {class: "stack", id: "nodes"},
        h("thead", {}, h("tr", {}, h("th", {}, "node"), h("th", {}, "state"), h("th", {}, "heartbeat"), h("th", {}, "links"))),
        h("tbody", {}, Object.keys(c.nodes).sort().map((n) => {
          const x = c.nodes[n], b = hb[n];
          return h("tr", {"data-node": n}, td("node", link("#/node/" + encodeURIComponent(n), n), n === c.dc ? " (DC)" : ""),
            td("state", state(x.state), x.maintenance ? " maintenance" : ""),
            td("heartbeat", b ? state(b.state) : "-"),
            td("links", b ? Object.entries(b.links).map(([l, s]) => h("span", {}, `${l} `, state(s), " ")) : "-"));
        })))));
      live.append(h("div", {class: "card"}, h("h2", {}, "Resources"), resourceTable(c)));
    }
  }};
}

function resourceTable(c) {
  const byId = Object.fromEntries(c.resources.map((r) => [r.id, r]));
  const rows = [];
  const row = (r, member) => h("tr", {"data-resource": r.id},
    td("resource", h("span", {class: member ? "member" : ""}, member ? "↳ " : "", link("#/resource/" + encodeURIComponent(r.id), r.id))),
    td("agent", r.kind === "primitive" ? `${r.class}${r.provider ? ":" + r.provider : ""}:${r.type}` : r.kind),
    td("role", state(r.role), r.managed === false ? " unmanaged" : "", r.target_role ? ` (target ${r.target_role})` : ""),
    td("where", h("span", {class: "where"}, (r.nodes || []).join(" ") || "-")),
    td("fail-counts", Object.entries(r.failcounts || {}).map(([n, k]) => `${n}: ${k}`).join(", ") || "-"));
  for (const r of c.resources) {
    if (r.parent) continue;
    rows.push(row(r, false));
    for (const m of r.members || []) if (byId[m]) rows.push(row(byId[m], true));
  }
  return h("table", {class: "stack", id: "resources"}, h("thead", {}, h("tr", {},
    ["resource", "agent", "role", "where", "fail-counts"].map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}

function nodePage(name) {
  const live = h("div", {class: "card"});
  const forms = h("div", {class: "card"}, h("h2", {}, "Change"),
    actionForm("node-standby", h("div", {class: "row"},
      h("button", {type: "submit", name: "standby", id: "btn-standby"}, "Standby"),
      h("button", {type: "submit", name: "online", class: "secondary", id: "btn-online"}, "Online"),
      h("button", {type: "submit", name: "maint-on", class: "secondary"}, "Maintenance on"),
      h("button", {type: "submit", name: "maint-off", class: "secondary"}, "Maintenance off")),
    (f, b) => b.name.startsWith("maint") ? crm("maintenance", {node: name, on: b.name === "maint-on"}) : crm(b.name, {node: name})));
  return {title: name, el: h("div", {}, h("h1", {}, "Node ", name), live, forms), update(S) {
    const x = S.crm && S.crm.nodes[name];
    const b = S.heartbeat && S.heartbeat.nodes[name];
    live.replaceChildren(x ? h("div", {}, h("p", {}, "CRM: ", state(x.state), x.standby ? " standby" : "", x.maintenance ? " maintenance" : "",
      S.crm.dc === name ? " — DC" : ""),
      h("p", {}, "Heartbeat: ", b ? state(b.state) : "not known"),
      h("h2", {}, "Resources here"), h("ul", {}, S.crm.resources.filter((r) => (r.nodes || []).includes(name) && !r.parent)
        .map((r) => h("li", {}, link("#/resource/" + encodeURIComponent(r.id), r.id), " ", state(r.role)))),
      h("h2", {}, "Attributes"), h("table", {}, Object.entries(x.attributes || {}).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)))))
      : h("p", {}, `No node ${name} in the CRM status.`));
  }};
}

function resourcePage(id) {
  const live = h("div", {class: "card", id: "resource-state"});
  const hist = h("div");
  const edit = h("div");
  let lastEpoch = null;
  const lifetime = () => h("label", {}, h("span", {}, "for (ISO 8601, empty: until cleared)"), h("input", {name: "lifetime", "data-field": "lifetime", placeholder: "PT1H", size: 8}));
  const forms = h("div", {class: "card"}, h("h2", {}, "Actions"),
    actionForm("move", h("div", {class: "row"}, h("label", {}, h("span", {}, "move to"), nodeSelect("node", "(away from where it runs)")), lifetime(),
      h("button", {type: "submit", id: "btn-move"}, "Move")),
      (f) => val(f, "lifetime") ? crm("move_for", {resource: id, node: val(f, "node"), lifetime: val(f, "lifetime")}) : crm("move", {resource: id, node: val(f, "node")})),
    actionForm("ban", h("div", {class: "row"}, h("label", {}, h("span", {}, "ban from"), nodeSelect("node")), lifetime(),
      h("button", {type: "submit"}, "Ban")), (f) => crm("ban", {resource: id, node: val(f, "node"), lifetime: val(f, "lifetime")})),
    actionForm("clear", h("div", {class: "row"}, h("label", {}, h("span", {}, "clear moves and bans on"), nodeSelect("node", "(every node)")),
      h("button", {type: "submit", id: "btn-clear"}, "Clear")), (f) => crm("clear", {resource: id, node: val(f, "node")})),
    actionForm("cleanup", h("div", {class: "row"}, h("label", {}, h("span", {}, "clean up history and fail-counts on"), nodeSelect("node", "(every node)")),
      h("button", {type: "submit"}, "Cleanup")), (f) => crm("cleanup", {resource: id, node: val(f, "node")})),
    actionForm("enable", h("div", {class: "row"}, h("button", {type: "submit", name: "enable"}, "Enable (start)"),
      h("button", {type: "submit", name: "disable", class: "secondary"}, "Disable (stop)"),
      h("button", {type: "submit", name: "delete", class: "danger"}, "Delete")),
      (f, b) => b.name === "delete" ? (confirm(`Delete ${id} and the constraints that name it?`) ? crm(isGroup() ? "delete_group" : "delete_resource", isGroup() ? {group: id} : {id}) : null)
        : crm(b.name, {resource: id})));
  const isGroup = () => { const r = S && S.crm && S.crm.resources.find((x) => x.id === id); return r && r.kind === "group"; };
  async function loadDetail() {
    const res = await api("GET", "/api/resource?id=" + encodeURIComponent(id));
    if (!res.ok) { hist.replaceChildren(h("p", {class: "error"}, res.data.error || res.data)); return; }
    const d = res.data;
    hist.replaceChildren(h("div", {class: "card"}, h("h2", {}, "Operation history"), d.history.length ? h("table", {class: "stack", id: "history"},
      h("thead", {}, h("tr", {}, ["node", "resource", "operation", "interval", "rc", "status", "call", "changed"].map((t) => h("th", {}, t)))),
      h("tbody", {}, d.history.map((o) => h("tr", {}, td("node", o.node), td("resource", o.resource), td("operation", o.operation),
        td("interval", o.interval), td("rc", o.rc), td("status", o.status), td("call", o.call),
        td("changed", o.last_rc_change ? new Date(o.last_rc_change * 1000).toLocaleString() : "-")))))
      : h("p", {class: "muted"}, "No operations recorded.")));
    if (!edit.firstChild && d.kind === "primitive" && d.params) edit.append(await editForm(d));
  }
  return {title: id, el: h("div", {}, h("h1", {}, "Resource ", id), live, forms, edit, hist), update(S) {
    const r = S.crm && S.crm.resources.find((x) => x.id === id);
    live.replaceChildren(r ? h("div", {},
      h("p", {}, state(r.role), " on ", h("strong", {id: "where"}, (r.nodes || []).join(", ") || "no node"), r.managed === false ? " (unmanaged)" : "",
        r.target_role ? ` · target-role ${r.target_role}` : ""),
      h("p", {class: "muted"}, r.kind === "primitive" ? `${r.class}${r.provider ? ":" + r.provider : ""}:${r.type}` : r.kind,
        r.parent ? [" in group ", link("#/resource/" + encodeURIComponent(r.parent), r.parent)] : "",
        r.members && r.members.length ? [" · members: ", r.members.map((m) => [link("#/resource/" + encodeURIComponent(m), m), " "])] : ""),
      h("p", {}, "fail-counts: ", Object.entries(r.failcounts || {}).map(([n, k]) => `${n}: ${k}`).join(", ") || "none"))
      : h("p", {}, `No resource ${id} in the CRM status.`));
    if (S.crm && S.crm.cib_epoch !== lastEpoch) { lastEpoch = S.crm.cib_epoch; loadDetail(); }
  }};
}

async function editForm(d) {
  let md = {parameters: []};
  const res = await api("GET", `/api/agent?class=${encodeURIComponent(d.class)}&provider=${encodeURIComponent(d.provider)}&type=${encodeURIComponent(d.type)}`);
  if (res.ok) md = res.data;
  const names = new Set([...md.parameters.map((p) => p.name), ...Object.keys(d.params)]);
  const fields = [...names].map((n) => paramField(md.parameters.find((p) => p.name === n) || {name: n}, d.params[n] || ""));
  return h("div", {class: "card"}, h("h2", {}, "Parameters"), actionForm("edit", h("div", {}, h("div", {class: "row params"}, fields),
    h("button", {type: "submit"}, "Save")), (f) => {
      const params = {};
      for (const i of f.querySelectorAll("[data-param]")) if ((d.params[i.dataset.param] || "") !== i.value) params[i.dataset.param] = i.value;
      return crm("update_resource", {id: d.id, params, meta: {}});
    }));
}

function paramField(p, value) {
  return h("label", {class: "param" + (p.required ? " req" : ""), title: p.longdesc || ""}, h("span", {}, p.name),
    h("input", {"data-param": p.name, "data-field": "params." + p.name, name: "param-" + p.name, value: value || "",
      placeholder: p.default || ""}), p.shortdesc ? h("small", {}, p.shortdesc) : null);
}

function createPage() {
  const paramsBox = h("div", {class: "row params"});
  const typeSel = h("select", {name: "type", "data-field": "type", id: "agent-type"});
  const clsSel = h("select", {name: "class", "data-field": "class", id: "agent-class"}, ["ocf", "lsb", "systemd"].map((c) => h("option", {value: c}, c)));
  const provSel = h("select", {name: "provider", "data-field": "provider", id: "agent-provider"});
  let agents = null;
  function fillTypes() {
    if (!agents) return;
    const c = clsSel.value;
    provSel.disabled = c !== "ocf";
    if (c === "ocf" && !provSel.options.length) for (const p of Object.keys(agents.ocf)) provSel.append(h("option", {value: p}, p));
    const list = c === "ocf" ? agents.ocf[provSel.value] || [] : agents[c] || [];
    typeSel.replaceChildren(h("option", {value: ""}, "(choose)"), ...list.map((t) => h("option", {value: t}, t)));
    paramsBox.replaceChildren();
  }
  async function fillParams() {
    paramsBox.replaceChildren();
    if (!typeSel.value) return;
    const r = await api("GET", `/api/agent?class=${clsSel.value}&provider=${encodeURIComponent(provSel.value)}&type=${encodeURIComponent(typeSel.value)}`);
    if (!r.ok) { paramsBox.append(h("p", {class: "error"}, r.data.error || r.data)); return; }
    const ps = r.data.parameters;
    paramsBox.append(...ps.filter((p) => p.required).concat(ps.filter((p) => !p.required)).map((p) => paramField(p, "")));
    if (!ps.length) paramsBox.append(h("p", {class: "muted"}, "This agent has no parameters."));
  }
  clsSel.addEventListener("change", fillTypes); provSel.addEventListener("change", fillTypes);
  typeSel.addEventListener("change", fillParams);
  api("GET", "/api/agents").then((r) => { if (r.ok) { agents = r.data; fillTypes(); } });
  const groups = h("datalist", {id: "groups"});
  const prim = actionForm("create-primitive", h("div", {},
    h("div", {class: "row"}, h("label", {class: "req"}, h("span", {}, "id"), h("input", {name: "id", "data-field": "id", id: "new-id", required: true})),
      h("label", {}, h("span", {}, "class"), clsSel), h("label", {}, h("span", {}, "provider"), provSel),
      h("label", {class: "req"}, h("span", {}, "type"), typeSel),
      h("label", {}, h("span", {}, "group (new or existing)"), h("input", {name: "group", "data-field": "group", list: "groups", id: "new-group"}), groups)),
    paramsBox,
    h("div", {class: "row"}, h("label", {}, h("span", {}, "monitor interval"), h("input", {name: "monitor", "data-field": "ops", value: "10s", size: 6})),
      h("label", {}, h("span", {}, "target-role"), h("select", {name: "target", "data-field": "meta.target-role"}, h("option", {value: ""}, "(start it)"), h("option", {value: "Stopped"}, "Stopped")))),
    h("button", {type: "submit", id: "btn-create"}, "Create primitive")), (f) => {
      const params = {};
      for (const i of f.querySelectorAll("[data-param]")) if (i.value !== "") params[i.dataset.param] = i.value;
      const ops = val(f, "monitor") ? [{name: "monitor", interval: val(f, "monitor")}] : [];
      const meta = val(f, "target") ? {"target-role": val(f, "target")} : {};
      return crm("create_primitive", {id: val(f, "id"), class: clsSel.value, provider: clsSel.value === "ocf" ? provSel.value : "",
        type: typeSel.value, params, meta, ops, group: val(f, "group")});
    });
  const members = h("select", {name: "members", multiple: true, size: 6, "data-field": "members"});
  const group = actionForm("create-group", h("div", {class: "row"},
    h("label", {class: "req"}, h("span", {}, "group id"), h("input", {name: "group", "data-field": "group", required: true})),
    h("label", {}, h("span", {}, "members, in start order"), members), h("button", {type: "submit"}, "Create group")),
    (f) => crm("create_group", {group: val(f, "group"), members: [...members.selectedOptions].map((o) => o.value)}));
  return {title: "Create", el: h("div", {}, h("h1", {}, "Create"), h("div", {class: "card"}, h("h2", {}, "Primitive"), prim),
    h("div", {class: "card"}, h("h2", {}, "Group of existing primitives"), group)), update(S) {
    if (!S.crm) return;
    const gs = S.crm.resources.filter((r) => r.kind === "group").map((r) => r.id);
    groups.replaceChildren(...gs.map((g) => h("option", {value: g})));
    const free = S.crm.resources.filter((r) => r.kind === "primitive" && !r.parent).map((r) => r.id);
    const chosen = new Set([...members.selectedOptions].map((o) => o.value));
    members.replaceChildren(...free.map((id) => h("option", {value: id, selected: chosen.has(id)}, id)));
  }};
}

function constraintsPage() {
  const list = h("div");
  let epoch = null;
  async function load() {
    const r = await api("GET", "/api/constraints");
    if (!r.ok) { list.replaceChildren(h("p", {class: "error"}, r.data.error || r.data)); return; }
    list.replaceChildren(r.data.length ? h("table", {class: "stack", id: "constraints"}, h("thead", {}, h("tr", {}, ["id", "kind", "what", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, r.data.map((c) => h("tr", {}, td("id", c.id), td("kind", c.kind),
        td("what", Object.entries(c.attributes).filter(([k]) => k !== "id").map(([k, v]) => `${k}=${v}`).join(" "), c.rules ? ` (${c.rules} rule)` : ""),
        td("", actionForm("delete-constraint", h("button", {type: "submit", class: "danger"}, "Delete"), () => crm("delete_constraint", {id: c.id})))))))
      : h("p", {class: "muted"}, "No constraints."));
  }
  const rsel = (name) => h("select", {name, "data-field": name}, ((S && S.crm && S.crm.resources) || []).filter((r) => !r.parent).map((r) => h("option", {value: r.id}, r.id)));
  const inp = (name, label, value) => h("label", {}, h("span", {}, label), h("input", {name, "data-field": name, value: value || "", size: 10}));
  const forms = h("div", {class: "grid"},
    h("div", {class: "card"}, h("h2", {}, "Location"), actionForm("add-location", h("div", {class: "row"}, h("label", {}, h("span", {}, "resource"), rsel("resource")),
      h("label", {}, h("span", {}, "node"), nodeSelect("node")), inp("score", "score", "100"), inp("id", "id (optional)"), h("button", {type: "submit"}, "Add")),
      (f) => crm("add_location", {id: val(f, "id"), resource: val(f, "resource"), node: val(f, "node"), score: val(f, "score")}))),
    h("div", {class: "card"}, h("h2", {}, "Colocation"), actionForm("add-colocation", h("div", {class: "row"}, h("label", {}, h("span", {}, "resource"), rsel("resource")),
      h("label", {}, h("span", {}, "with"), rsel("with")), inp("score", "score", "INFINITY"), inp("id", "id (optional)"), h("button", {type: "submit"}, "Add")),
      (f) => crm("add_colocation", {id: val(f, "id"), resource: val(f, "resource"), with: val(f, "with"), score: val(f, "score")}))),
    h("div", {class: "card"}, h("h2", {}, "Order"), actionForm("add-order", h("div", {class: "row"}, h("label", {}, h("span", {}, "first"), rsel("first")),
      h("label", {}, h("span", {}, "then"), rsel("then")), h("label", {}, h("span", {}, "kind"), h("select", {name: "kind"}, ["Mandatory", "Optional", "Serialize"].map((k) => h("option", {}, k)))),
      inp("id", "id (optional)"), h("button", {type: "submit"}, "Add")),
      (f) => crm("add_order", {id: val(f, "id"), first: val(f, "first"), then: val(f, "then"), kind: val(f, "kind")}))));
  return {title: "Constraints", el: h("div", {}, h("h1", {}, "Constraints"), h("div", {class: "card"}, list), forms), update(S) {
    if (S.crm && S.crm.cib_epoch !== epoch) { epoch = S.crm.cib_epoch; load(); }
  }};
}

function cibPage() {
  const ta = h("textarea", {name: "xml", "data-field": "xml", id: "cib-xml", spellcheck: "false"});
  const note = h("p", {class: "muted"});
  const reload = async () => {
    const r = await api("GET", "/api/cib");
    if (r.ok) { ta.value = r.data; note.textContent = "The whole CIB as ha-crmd holds it. Replace sends its configuration section; the status section is the cluster's."; }
    else note.textContent = r.data.error || r.data;
  };
  reload();
  return {title: "CIB", el: h("div", {}, h("h1", {}, "CIB"), note, h("div", {class: "card"}, actionForm("replace-cib",
    h("div", {}, h("label", {}, h("span", {}, "CIB XML"), ta), h("div", {class: "row"}, h("button", {type: "submit"}, "Check and replace"),
      h("button", {type: "button", class: "secondary", onclick: reload}, "Reload from the cluster"))),
    () => api("POST", "/api/cib", {xml: ta.value})))), update() {}};
}

function directorPage() {
  const live = h("div");
  return {title: "Director", el: h("div", {}, h("h1", {}, "Director"), live), update(S) {
    const d = S.director;
    if (!d) { live.replaceChildren(h("p", {class: "card"}, "ha-ldirectord is not on the bus on this node.")); return; }
    live.replaceChildren(h("p", {class: "muted", id: "director-status"}, `${d.status}${d.status.includes("backend") ? "" : " · backend " + d.backend} · ${d.config}`),
      ...d.virtual_services.map((v) => h("div", {class: "card", "data-virtual": v.key},
        h("h2", {}, v.key), h("p", {class: "muted"}, `scheduler ${v.scheduler} · check ${v.checktype}${v.service ? " (" + v.service + ")" : ""}` +
          (v.persistent ? ` · persistent ${v.persistent}s` : "")),
        h("table", {class: "stack reals"},
          h("thead", {}, h("tr", {}, ["real server", "method", "health", "weight", "configured", ""].map((t) => h("th", {}, t)))),
          h("tbody", {}, d.reals.filter((r) => r.virtual === v.key).map((r) => h("tr", {"data-real": r.real},
            td("real server", r.real), td("method", r.method),
            td("health", state(r.health), r.detail ? h("div", {class: "muted"}, r.detail) : ""),
            td("weight", h("span", {class: "weight"}, r.weight < 0 ? "not in the table" : r.weight), r.overridden ? " (set by an admin)" : ""),
            td("configured", r.configured),
            td("", actionForm("real", h("div", {class: "row"}, h("button", {type: "submit", name: "drain", class: "secondary"}, "Drain"),
              h("button", {type: "submit", name: "restore", class: "secondary"}, "Restore")),
              (f, b) => api("POST", "/api/director/" + b.name, {virtual: r.virtual, real: r.real}))))))))));
  }};
}

// ---- routing and live updates ------------------------------------------------------------------------
function route() {
  const parts = (location.hash.replace(/^#\/?/, "") || "").split("/").map(decodeURIComponent);
  const pages = {"": overview, node: () => nodePage(parts[1]), resource: () => resourcePage(parts[1]), create: createPage,
    constraints: constraintsPage, cib: cibPage, director: directorPage};
  current = (pages[parts[0]] || overview)();
  document.title = `${current.title} — hadaemon`;
  document.getElementById("page").replaceChildren(current.el);
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + parts[0]);
  if (S) current.update(S);
}

function show(snapshot) {
  const first = !S;
  S = snapshot;
  document.getElementById("missing").textContent = (S.errors || []).length ? "Not available: " + S.errors.join("; ") : "";
  if (first) route();  // a page opened before the first snapshot built its node and resource lists empty
  else if (current) current.update(S);
}

function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/events");
  es.addEventListener("status", (ev) => { live.textContent = "live"; live.className = "live on"; show(JSON.parse(ev.data)); });
  es.addEventListener("logout", () => { es.close(); location.href = "/login"; });
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

window.addEventListener("hashchange", route);
route();
api("GET", "/api/status").then((r) => { if (r.ok) show(r.data); });
connect();
