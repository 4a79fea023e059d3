// Logs: the daemon's log, live (`logs.tail` from a cursor), with a level filter and pause.

import { h, clear, notice } from "../dom.js";

const LEVELS = ["trace", "debug", "info", "warn", "error"];

export async function render({ gateway, onCleanup }) {
  const out = h("div#log-lines.logs", { role: "log", "aria-live": "off" });
  const status = h("div");
  const level = h("select#log-level", { "aria-label": "Least severe level shown" }, LEVELS.map((l) => h("option", { value: l, selected: l === "info" }, l)));
  const pause = h("button#log-pause", { type: "button", "aria-pressed": "false", onclick: () => {
    paused = !paused; pause.textContent = paused ? "Resume" : "Pause"; pause.setAttribute("aria-pressed", String(paused));
  } }, "Pause");
  let cursor = undefined, paused = false, stopped = false, lines = [];
  function shown(entry) { return LEVELS.indexOf((entry.level || "info").toLowerCase()) >= LEVELS.indexOf(level.value); }
  function line(entry) {
    const fields = Object.entries(entry).filter(([k]) => !["time", "level", "subsystem", "message"].includes(k)).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
    return h("div.line", { dataset: { level: (entry.level || "").toLowerCase() } },
      h("time", {}, (entry.time || "").replace("T", " ").slice(0, 23)), " ", h("b", {}, (entry.level || "").toUpperCase()), " ",
      entry.subsystem ? `${entry.subsystem}: ` : "", entry.message || "", fields ? h("span.fields", {}, ` ${fields}`) : null);
  }
  function redraw() { clear(out, lines.filter(shown).map(line)); out.scrollTop = out.scrollHeight; }
  level.addEventListener("change", redraw);
  async function poll() {
    while (!stopped) {
      if (!paused) {
        try {
          const tail = await gateway.request("logs.tail", cursor === undefined ? { limit: 200 } : { cursor, limit: 500 });
          cursor = tail.cursor;
          if (tail.reset) lines = [];
          const fresh = tail.lines.map((l) => { try { return JSON.parse(l); } catch { return { message: l }; } });
          if (fresh.length) {
            lines = lines.concat(fresh).slice(-2000);
            const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 40;
            append(fresh.filter(shown));
            if (stick) out.scrollTop = out.scrollHeight;
          }
          clear(status);
        } catch (e) { clear(status, notice(e.message)); }
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  function append(entries) { for (const e of entries) out.append(line(e)); while (out.childElementCount > 2000) out.firstChild.remove(); }
  onCleanup(() => { stopped = true; });
  poll();
  return h("section", {}, h("div.toolbar", {}, h("h1", {}, "Logs"), level, pause), status, out);
}
