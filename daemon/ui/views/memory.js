// Memory: a session's notes, listed, added, edited and deleted (`memory.*`).

import { h, clear, notice, ago } from "../dom.js";

export async function render({ gateway, args, navigate }) {
  const canWrite = gateway.can("write");
  const sessions = await gateway.request("sessions.list", { limit: 500 });
  const key = args[0] || (sessions.sessions[0] && sessions.sessions[0].key) || "main";
  const status = h("div");
  const pick = h("select#memory-session", { "aria-label": "Session", onchange: () => navigate(`memory/${encodeURIComponent(pick.value)}`) },
    [...new Set([key, ...sessions.sessions.map((s) => s.key)])].map((k) => h("option", { value: k, selected: k === key }, k)));
  const list = h("div.notes");
  async function load() {
    const { notes } = await gateway.request("memory.list", { sessionKey: key });
    clear(list, notes.length ? notes.map(noteCard) : h("p.empty", {}, "No notes for this session."));
  }
  async function save(name, value) {
    try {
      await gateway.request("memory.put", { sessionKey: key, name, value });
      clear(status, notice(`Saved ${name}.`, "info"));
      await load();
    } catch (e) { clear(status, notice(e.message)); }
  }
  function noteCard(n) {
    const text = h("textarea", { rows: 3, readOnly: !canWrite, "aria-label": `Note ${n.name}` }, n.value);
    return h("article.card.note", { dataset: { name: n.name } },
      h("h2", {}, n.name), h("small", {}, `updated ${ago(n.updated_at_ms || n.updatedAtMs)}`), text,
      canWrite ? h("div.actions", {},
        h("button", { type: "button", onclick: () => save(n.name, text.value) }, "Save"),
        h("button.danger", { type: "button", onclick: async () => {
          if (!confirm(`Delete the note ${n.name}?`)) return;
          try { await gateway.request("memory.delete", { sessionKey: key, name: n.name }); await load(); } catch (e) { clear(status, notice(e.message)); }
        } }, "Delete")) : null);
  }
  const add = canWrite ? h("form.card", { onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    await save(f.newname.value.trim(), f.newvalue.value);
    f.newname.value = ""; f.newvalue.value = "";
  } }, h("h2", {}, "Add a note"),
    h("label", { for: "note-name" }, "Name"), h("input#note-name", { name: "newname", required: true }),
    h("label", { for: "note-value" }, "Text"), h("textarea#note-value", { name: "newvalue", rows: 3, required: true }),
    h("button.primary", { type: "submit" }, "Add note")) : null;
  await load();
  return h("section", {}, h("div.toolbar", {}, h("h1", {}, "Memory"), pick), status, add, list);
}
