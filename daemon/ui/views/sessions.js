// Sessions: list and search, a transcript, reset, delete, append a note (memory). Write actions
// appear only for a connection with the write scope; the server refuses them anyway otherwise.

import { h, clear, notice, ago, messageText } from "../dom.js";

export async function render({ gateway, args, navigate }) {
  const canWrite = gateway.can("write");
  const status = h("div");
  if (args[0]) return transcript({ gateway, key: args[0], navigate, canWrite, status });
  const list = await gateway.request("sessions.list", { limit: 500 });
  const search = h("input#session-search", { type: "search", placeholder: "Search sessions", "aria-label": "Search sessions" });
  const rows = h("tbody");
  function fill() {
    const q = search.value.trim().toLowerCase();
    const shown = list.sessions.filter((s) => !q || s.key.toLowerCase().includes(q) || (s.label || "").toLowerCase().includes(q));
    clear(rows, shown.length ? shown.map((s) => h("tr", {},
      h("td", {}, h("a", { href: `sessions/${encodeURIComponent(s.key)}`, onclick: (e) => { e.preventDefault(); navigate(`sessions/${encodeURIComponent(s.key)}`); } }, s.key)),
      h("td", {}, s.agent), h("td", {}, String(s.messageCount)), h("td", {}, ago(s.updatedAtMs))))
      : h("tr", {}, h("td", { colspan: 4 }, "No sessions.")));
  }
  search.addEventListener("input", fill);
  fill();
  const create = canWrite ? h("form.inline", { onsubmit: async (e) => {
    e.preventDefault();
    try {
      const key = e.target.elements.newkey.value.trim();
      const created = await gateway.request("sessions.create", key ? { key } : {});
      navigate(`sessions/${encodeURIComponent(created.key)}`);
    } catch (err) { clear(status, notice(err.message)); }
  } }, h("input", { name: "newkey", placeholder: "new session key (optional)", "aria-label": "New session key" }), h("button", { type: "submit" }, "Create session")) : null;
  return h("section", {}, h("h1", {}, "Sessions"), h("div.toolbar", {}, search, create), status,
    h("div.scroll", {}, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Agent"), h("th", {}, "Messages"), h("th", {}, "Updated"))), rows)));
}

async function transcript({ gateway, key, navigate, canWrite, status }) {
  const history = await gateway.request("chat.history", { sessionKey: key, limit: 500 });
  const confirmThen = (question, fn) => async () => {
    if (!confirm(question)) return;
    try { await fn(); } catch (e) { clear(status, notice(e.message)); }
  };
  const actions = canWrite ? h("div.actions", {},
    h("button", { type: "button", onclick: () => navigate(`chat/${encodeURIComponent(key)}`) }, "Open in chat"),
    h("button#reset", { type: "button", onclick: confirmThen(`Forget the messages of ${key}? Its notes stay.`, async () => {
      await gateway.request("sessions.reset", { key }); navigate(`sessions/${encodeURIComponent(key)}`, true);
    }) }, "Reset"),
    h("button#delete.danger", { type: "button", onclick: confirmThen(`Delete ${key}, its messages and notes?`, async () => {
      await gateway.request("sessions.delete", { key }); navigate("sessions");
    }) }, "Delete")) : null;
  const note = canWrite ? h("form.inline", { onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    try {
      await gateway.request("memory.put", { sessionKey: key, name: f.notename.value.trim(), value: f.notevalue.value });
      clear(status, notice(`Note ${f.notename.value} saved.`, "info"));
      f.notename.value = ""; f.notevalue.value = "";
    } catch (err) { clear(status, notice(err.message)); }
  } }, h("input", { name: "notename", required: true, placeholder: "note name", "aria-label": "Note name" }),
     h("input", { name: "notevalue", required: true, placeholder: "note text", "aria-label": "Note text" }),
     h("button", { type: "submit" }, "Append note")) : null;
  return h("section", {},
    h("p", {}, h("a", { href: "../sessions", onclick: (e) => { e.preventDefault(); navigate("sessions"); } }, "← Sessions")),
    h("h1", {}, key), actions, note, status,
    h("div.transcript", {}, history.messages.length
      ? history.messages.map((m) => h(`div.msg.${m.role}`, {}, h("div.who", {}, m.role), h("div.text", {}, messageText(m) || (m.toolCalls ? `tool call: ${m.toolCalls.map((c) => (c.function || c).name).join(", ")}` : ""))))
      : h("p.empty", {}, "No messages.")));
}
