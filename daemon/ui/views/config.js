// Config: the config in effect (secrets redacted) for everyone; for admins the file itself in
// an editor that submits through `config.apply` with the base hash, and shows the validation
// errors (line and key) or the reload outcome.

import { h, clear, notice } from "../dom.js";

export async function render({ gateway }) {
  const current = await gateway.request("config.get");
  const status = h("div#config-status");
  const effective = h("details.card", {}, h("summary", {}, "Effective config (secrets redacted)"), h("pre", {}, JSON.stringify(current.config, null, 2)));
  const head = h("p", {}, h("code", {}, current.path), ` · generation `, h("span#config-generation", {}, String(current.generation)), current.exists ? "" : " · no file yet: defaults in effect");
  if (current.raw === undefined || !gateway.can("write")) {
    return h("section", {}, h("h1", {}, "Config"), head, notice("Editing the config needs the operator.admin scope.", "info"), effective);
  }
  let baseHash = current.hash;
  const editor = h("textarea#config-text.code", { rows: 24, spellcheck: false, "aria-label": "Config file (TOML)" }, current.raw || "");
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    clear(status, notice("Applying…", "info"));
    try {
      const out = await gateway.request("config.apply", { raw: editor.value, baseHash });
      baseHash = out.hash;
      document.getElementById("config-generation").textContent = String(out.generation);
      const r = out.reload || {};
      clear(status, notice(`Applied: ${r.message || r.outcome || "ok"} (generation ${out.generation})`, "info"));
    } catch (err) {
      const errors = (err.details && err.details.errors) || [];
      clear(status, notice(err.message), errors.length ? h("ul.errors", {}, errors.map((x) =>
        h("li", {}, `${x.file || "config"}${x.line ? `:${x.line}` : ""}${x.key ? ` (${x.key})` : ""}: ${x.message}`))) : null);
    }
  } }, editor, h("div.actions", {},
    h("button#config-apply.primary", { type: "submit" }, "Apply"),
    h("button", { type: "button", onclick: async () => {
      const fresh = await gateway.request("config.get");
      editor.value = fresh.raw || ""; baseHash = fresh.hash;
      document.getElementById("config-generation").textContent = String(fresh.generation);
      clear(status, notice("Reloaded from the file.", "info"));
    } }, "Reload from file")));
  return h("section", {}, h("h1", {}, "Config"), head, status, form, effective);
}
