// Devices: paired devices and pending pairing requests; approve, reject, revoke.

import { h, clear, notice, ago } from "../dom.js";

export async function render({ gateway, onCleanup }) {
  const status = h("div");
  const body = h("div");
  const act = (method, params, done) => async () => {
    try { await gateway.request(method, params); clear(status, notice(done, "info")); await load(); } catch (e) { clear(status, notice(e.message)); }
  };
  async function load() {
    const { pending, paired } = await gateway.request("device.pair.list");
    clear(body,
      h("h2", {}, "Waiting for approval"),
      pending.length ? h("ul.items", {}, pending.map((p) => h("li.card", { dataset: { request: p.requestId } },
        h("b", {}, p.displayName || p.clientId), ` ${p.platform} · asks for ${p.scopes.join(", ") || "no scopes"} · ${ago(p.ts)}`,
        h("div", {}, h("code", {}, p.deviceId.slice(0, 16))),
        h("div.actions", {},
          h("button.primary", { type: "button", onclick: act("device.pair.approve", { requestId: p.requestId }, "Approved.") }, "Approve"),
          h("button", { type: "button", onclick: act("device.pair.reject", { requestId: p.requestId }, "Rejected.") }, "Reject")))))
        : h("p.empty", {}, "No pairing requests."),
      h("h2", {}, "Paired"),
      h("ul.items", {}, paired.map((d) => h("li.card", { dataset: { device: d.deviceId } },
        h("b", {}, d.displayName || d.clientId), ` ${d.platform} · ${d.scopes.join(", ")} · seen ${ago(d.lastSeenAtMs)}`,
        h("div", {}, h("code", {}, d.deviceId.slice(0, 16))),
        h("div.actions", {}, h("button.danger", { type: "button", onclick: () => {
          if (confirm(`Revoke ${d.displayName || d.clientId}? Its connections close.`)) act("device.pair.remove", { deviceId: d.deviceId }, "Revoked.")();
        } }, "Revoke"))))));
  }
  await load();
  const timer = setInterval(() => load().catch(() => {}), 5000);
  onCleanup(() => clearInterval(timer));
  return h("section", {}, h("h1", {}, "Devices"), status, body);
}
