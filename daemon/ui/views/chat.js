// Chat: a session's transcript, a composer, the answer streaming in from `chat` events, abort,
// tool calls and their results inline, the agent and model to use.

import { h, clear, notice, messageText } from "../dom.js";

function bubble(m) {
  const role = m.role;
  const parts = [];
  const text = messageText(m);
  if (text) parts.push(h("div.text", {}, text));
  for (const call of m.toolCalls || []) {
    const fn = call.function || call;
    parts.push(h("details.tool", { open: true }, h("summary", {}, `tool call: ${fn.name}`), h("pre", {}, fn.arguments || JSON.stringify(fn.args || {}))));
  }
  if (role === "tool") return h("details.msg.tool", {}, h("summary", {}, "tool result"), h("pre", {}, text));
  return h(`div.msg.${role}`, { dataset: { role } }, h("div.who", {}, role), parts);
}

export async function render({ gateway, args, navigate, onCleanup }) {
  let key = args[0] || "main";
  const [sessions, agents, models] = await Promise.all([
    gateway.request("sessions.list", { limit: 200 }),
    gateway.request("agents.list"),
    gateway.request("models.list"),
  ]);
  const canWrite = gateway.can("write");
  const sessionPick = h("select#session", { onchange: () => navigate(`chat/${encodeURIComponent(sessionPick.value)}`) },
    [...new Set([key, ...sessions.sessions.map((s) => s.key)])].map((k) => h("option", { value: k, selected: k === key }, k)));
  const newButton = canWrite ? h("button", { type: "button", onclick: async () => {
    const created = await gateway.request("sessions.create", {});
    navigate(`chat/${encodeURIComponent(created.key)}`);
  } }, "New session") : null;
  const agentPick = h("select#agent", {}, agents.agents.map((a) => h("option", { value: a.id, selected: a.default }, a.id)));
  const modelPick = h("select#model", {}, h("option", { value: "" }, "agent's model"),
    models.models.map((m) => h("option", { value: m.id }, m.id)));
  const log = h("div.transcript", { role: "log", "aria-live": "polite", "aria-label": "Transcript" });
  const status = h("div.chat-status");
  const input = h("textarea#message", { rows: 3, placeholder: canWrite ? "Message (Enter sends, Shift+Enter a new line)" : "read-only", disabled: !canWrite, "aria-label": "Message" });
  const send = h("button#send.primary", { type: "submit", disabled: !canWrite }, "Send");
  const abort = h("button#abort", { type: "button", hidden: true, onclick: () => gateway.request("chat.abort", { sessionKey: key }).catch((e) => clear(status, notice(e.message))) }, "Stop");
  let live = null; // the answer streaming in: {runId, el}

  // The latest messages; "Show earlier" asks for more (the gateway keeps them all).
  let shown = 100;
  async function history(keepPlace = false) {
    const past = await gateway.request("chat.history", { sessionKey: key, limit: shown });
    const fromBottom = log.scrollHeight - log.scrollTop;
    const earlier = past.messages.length >= shown
      ? h("button#earlier.quiet", { type: "button", onclick: () => { shown = Math.min(shown * 4, 10000); history(true); } }, "Show earlier messages")
      : null;
    clear(log, earlier, past.messages.length ? past.messages.map(bubble) : h("p.empty", {}, "No messages yet."));
    log.scrollTop = keepPlace ? log.scrollHeight - fromBottom : log.scrollHeight;
  }

  function onChat(e) {
    const ev = e.detail;
    if (ev.sessionKey !== key) return;
    if (!live || live.runId !== ev.runId) {
      log.querySelector(".empty")?.remove();
      const el = h("div.msg.assistant.streaming", { dataset: { role: "assistant", run: ev.runId } }, h("div.who", {}, "assistant"), h("div.text", {}));
      log.append(el);
      live = { runId: ev.runId, el };
    }
    const text = ev.message ? messageText(ev.message) : null;
    if (text !== null) live.el.querySelector(".text").textContent = text;
    log.scrollTop = log.scrollHeight;
    if (ev.state === "delta") { abort.hidden = false; return; }
    abort.hidden = true;
    live.el.classList.remove("streaming");
    if (ev.state === "aborted") live.el.append(h("p.notice.info", {}, "stopped"));
    if (ev.state === "error") live.el.append(notice(ev.errorMessage || "the run failed"));
    live = null;
    if (ev.state === "final") history().catch(() => {});
  }
  gateway.addEventListener("chat", onChat);
  onCleanup(() => gateway.removeEventListener("chat", onChat));

  const form = h("form.composer", {
    onsubmit: async (e) => {
      e.preventDefault();
      const message = input.value.trim();
      if (!message) return;
      clear(status);
      input.value = "";
      log.querySelector(".empty")?.remove();
      log.append(bubble({ role: "user", text: message }));
      log.scrollTop = log.scrollHeight;
      abort.hidden = false;
      try {
        const params = { sessionKey: key, message, idempotencyKey: crypto.randomUUID(), agentId: agentPick.value };
        if (modelPick.value) params.model = modelPick.value;
        await gateway.request("chat.send", params);
      } catch (err) {
        abort.hidden = true;
        clear(status, notice(err.message));
      }
    },
  }, input, h("div.actions", {}, abort, send));
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });

  await history();
  return h("section.chat", {},
    h("div.toolbar", {}, h("h1", {}, "Chat"),
      h("label.inline", {}, "Session", sessionPick), newButton,
      h("label.inline", {}, "Agent", agentPick),
      h("label.inline", {}, "Model", modelPick)),
    log, status, form);
}
