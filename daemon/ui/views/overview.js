// Overview: what `gatewayctl status --deep` knows, kept current by the gateway's events.

import { h, clear, ago, duration, notice } from "../dom.js";

function row(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

export async function render({ gateway, onCleanup }) {
  const body = h("div.grid");
  const root = h("section", {}, h("h1", {}, "Overview"), body);
  async function refresh() {
    let s, health;
    try {
      [s, health] = await Promise.all([gateway.request("status"), gateway.request("health")]);
    } catch (e) {
      clear(body, notice(e.message));
      return;
    }
    const reload = s.last_reload;
    const reloadLine = reload
      ? [`${reload.outcome} (${reload.trigger}) ${ago(reload.at_ms)}`, reload.outcome === "rejected" ? h("p.notice.error", { role: "alert" }, reload.message) : null]
      : ["none since start"];
    const c = s.counters || {};
    clear(body,
      h("article.card", {}, h("h2", {}, "Runtime"), h("dl", {},
        row("State", h("span.badge", { dataset: { state: s.state } }, s.state)),
        row("Version", s.version),
        row("PID", String(s.pid)),
        row("Supervisor", s.supervisor),
        row("Up", duration(s.uptime_ms)),
        row("Listening", s.listen.addr),
        row("Auth", s.auth_mode))),
      h("article.card", {}, h("h2", {}, "Config"), h("dl", {},
        row("File", h("code", {}, s.config.path)),
        row("Generation", h("span#generation", {}, String(s.config.generation))),
        row("Reload mode", s.config.reload_mode),
        row("Last reload", ...reloadLine),
        s.config.pending_restart && s.config.pending_restart.length ? row("Needs restart", s.config.pending_restart.join(", ")) : null)),
      h("article.card", {}, h("h2", {}, "Health"),
        h("p", {}, h("span.badge", { dataset: { state: health.ok ? "ok" : "failing" } }, health.ok ? "healthy" : "failing")),
        h("ul.checks", {}, (health.checks || []).map((ch) => h("li", { dataset: { ok: String(ch.ok) } }, h("b", {}, ch.name), " ", ch.detail || (ch.ok ? "ok" : "failing"))))),
      h("article.card", {}, h("h2", {}, "Heartbeat"), h("dl", {},
        row("Ticks", String(s.heartbeat.ticks)),
        row("Every", `${s.heartbeat.interval_ms} ms`),
        row("Last tick", s.heartbeat.last_tick_ms_ago == null ? "not yet" : `${Math.round(s.heartbeat.last_tick_ms_ago / 1000)} s ago`))),
      h("article.card", {}, h("h2", {}, "Connections"), h("dl", {},
        row("WebSocket", String(s.connections.websocket)),
        row("HTTP", String(s.connections.http)),
        row("Control socket", String(s.connections.control)),
        s.web_ui ? row("UI sessions", String(s.web_ui.active_sessions)) : null)),
      h("article.card", {}, h("h2", {}, "Counters"), h("dl", {},
        Object.entries(c).map(([k, v]) => row(k.replace(/_/g, " "), String(v))))));
  }
  await refresh();
  const events = ["config.changed", "health", "heartbeat", "presence"];
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };
  events.forEach((e) => gateway.addEventListener(e, later));
  onCleanup(() => { clearTimeout(timer); events.forEach((e) => gateway.removeEventListener(e, later)); });
  return root;
}
