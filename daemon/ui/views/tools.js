// Tools: the catalog with each tool's parameters schema, whether it is on and whether direct
// calls may use it; a form that checks a call (`tools.invoke` with dryRun) or runs it.

import { h, clear, notice } from "../dom.js";

export async function render({ gateway }) {
  const { tools } = await gateway.request("tools.catalog");
  const canWrite = gateway.can("write");
  const result = h("div#tool-result");
  const toolPick = h("select#tool-name", { name: "tool" }, tools.map((t) => h("option", { value: t.name }, t.name)));
  const argsInput = h("textarea#tool-args", { name: "args", rows: 4, spellcheck: false }, "{}");
  const sessionInput = h("input#tool-session", { name: "session", placeholder: "session key (memory tools)" });
  async function call(dryRun) {
    clear(result);
    let args;
    try { args = JSON.parse(argsInput.value || "{}"); } catch (e) { clear(result, notice(`The arguments are not JSON: ${e.message}`)); return; }
    const params = { tool: toolPick.value, args, dryRun };
    if (sessionInput.value.trim()) params.sessionKey = sessionInput.value.trim();
    try {
      const out = await gateway.request("tools.invoke", params);
      clear(result, dryRun ? notice(`${out.tool}: this call would be allowed.`, "info") : h("pre", {}, JSON.stringify(out.result, null, 2)));
    } catch (e) { clear(result, notice(e.message)); }
  }
  const form = canWrite ? h("form.card", { onsubmit: (e) => { e.preventDefault(); call(true); } },
    h("h2", {}, "Try a call"),
    h("label", { for: "tool-name" }, "Tool"), toolPick,
    h("label", { for: "tool-args" }, "Arguments (JSON)"), argsInput,
    h("label", { for: "tool-session" }, "Session"), sessionInput,
    h("div.actions", {}, h("button.primary", { type: "submit" }, "Dry run"), h("button", { type: "button", onclick: () => call(false) }, "Run")),
    result) : null;
  return h("section", {}, h("h1", {}, "Tools"), form,
    tools.map((t) => h("article.card.tool-entry", { dataset: { tool: t.name } },
      h("h2", {}, t.name, " ",
        h("span.badge", { dataset: { state: t.enabled ? "ok" : "off" } }, t.enabled ? "on" : "off"), " ",
        h("span.badge", { dataset: { state: t.httpDenied ? "off" : "ok" } }, t.httpDenied ? "direct calls denied" : "direct calls allowed"),
        t.needsSession ? h("span.badge", {}, "needs a session") : null),
      h("p", {}, t.description),
      h("details", {}, h("summary", {}, "Parameters"), h("pre", {}, JSON.stringify(t.parameters, null, 2))))));
}
