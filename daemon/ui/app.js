// The Control UI: sign-in, the connection, and the views. Each view is a module with
// `render(ctx)` that returns its element and may return a cleanup; routes are paths under the
// UI's mount point (`/ui/chat`), so the browser's back button and links work.

import { h, clear, notice } from "./dom.js";
import { Gateway, GatewayError, uiSession } from "./gateway.js";

const BASE = new URL(document.querySelector('link[rel="stylesheet"]').getAttribute("href"), location.href).pathname.replace(/style\.css$/, "");
const ALL_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.pairing"];

// The views, in the order the navigation shows them. Channels and scheduled jobs join here.
const VIEWS = [
  { path: "", title: "Overview", module: "./views/overview.js" },
  { path: "chat", title: "Chat", module: "./views/chat.js" },
  { path: "sessions", title: "Sessions", module: "./views/sessions.js" },
  { path: "memory", title: "Memory", module: "./views/memory.js" },
  { path: "tools", title: "Tools", module: "./views/tools.js" },
  { path: "devices", title: "Devices", module: "./views/devices.js", need: "pairing" },
  { path: "config", title: "Config", module: "./views/config.js" },
  { path: "logs", title: "Logs", module: "./views/logs.js" },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const conn = document.getElementById("conn");
const signOutButton = document.getElementById("signout");
let gateway = null;
let cleanup = null;
let retryTimer = null;
let session = null;

function setConn(text, state) {
  conn.textContent = text;
  conn.dataset.state = state;
}

/** The route: the view and what follows it (`sessions/main` -> sessions, ["main"]). */
function route() {
  const rest = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "";
  const [first, ...more] = rest.split("/").filter(Boolean).map(decodeURIComponent);
  const view = VIEWS.find((v) => v.path === (first || "")) || VIEWS[0];
  return { view, args: more, query: new URLSearchParams(location.search) };
}

export function navigate(path, replace = false) {
  const url = BASE + path;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  show();
}

function renderNav() {
  const current = route().view;
  clear(nav, VIEWS.filter((v) => !v.need || (gateway && gateway.can(v.need))).map((v) =>
    h("a", {
      href: BASE + v.path,
      "aria-current": v === current ? "page" : undefined,
      onclick: (e) => { if (e.button === 0 && !e.metaKey && !e.ctrlKey) { e.preventDefault(); navigate(v.path); } },
    }, v.title)));
}

async function show() {
  if (cleanup) { try { cleanup(); } catch { /* a view's cleanup must not stop the next one */ } cleanup = null; }
  if (!gateway || !gateway.hello) return;
  renderNav();
  const { view, args, query } = route();
  document.title = `${view.title} · gateway`;
  const module = await import(view.module);
  const ctx = { gateway, args, query, navigate, base: BASE, session, onCleanup: (fn) => { cleanup = fn; } };
  try {
    const el = await module.render(ctx);
    clear(main, el);
  } catch (e) {
    clear(main, h("h1", {}, view.title), notice(`${e.message}`));
  }
}

// ---- sign-in --------------------------------------------------------------------------------

function signInForm(mode, message, kind = "info") {
  const secretName = mode === "password" ? "password" : "token";
  const input = h("input", { id: "secret", name: secretName, type: "password", autocomplete: mode === "password" ? "current-password" : "off", required: true });
  const readOnly = h("input", { id: "readonly", type: "checkbox" });
  const status = h("div");
  const form = h("form.card.signin", {
    onsubmit: async (e) => {
      e.preventDefault();
      clear(status);
      try {
        await uiSession("POST", { [secretName]: input.value });
        input.value = "";
        sessionStorage.setItem("gateway-ui-read-only", readOnly.checked ? "1" : "");
        await start();
      } catch (err) {
        clear(status, notice(err.message));
      }
    },
  },
    h("h1", {}, "Sign in to the gateway"),
    message ? notice(message, kind) : null,
    h("p", {}, mode === "password"
      ? "Enter the gateway password."
      : ["Run ", h("code", {}, "gatewayctl dashboard"), " on the gateway's host for a link that signs you in, or paste the gateway token (",
         h("code", {}, "gatewayctl token show"), ")."]),
    h("label", { for: "secret" }, mode === "password" ? "Password" : "Gateway token"),
    input,
    h("label.check", {}, readOnly, " Read-only: this browser may look, not change"),
    h("button.primary", { type: "submit" }, "Sign in"),
    status);
  clear(main, form);
  clear(nav);
  signOutButton.hidden = true;
  setConn("signed out", "off");
  input.focus();
}

async function signOut() {
  try { await uiSession("DELETE"); } catch { /* signed out anyway below */ }
  if (gateway) gateway.close();
  gateway = null;
  sessionStorage.removeItem("gateway-ui-read-only");
  signInForm(session ? session.authMode : "token", "Signed out.");
}
signOutButton.addEventListener("click", signOut);

// ---- the connection -------------------------------------------------------------------------

async function connect() {
  clearTimeout(retryTimer);
  const scopes = sessionStorage.getItem("gateway-ui-read-only") ? ["operator.read"] : ALL_SCOPES;
  const gw = new Gateway({ scopes });
  setConn("connecting", "busy");
  try {
    await gw.connect();
  } catch (e) {
    if (e.code === "NOT_PAIRED") {
      const id = e.details.requestId;
      setConn("waiting for approval", "busy");
      clear(main, h("section.card", {},
        h("h1", {}, "This browser waits for approval"),
        h("p", {}, "It is a new device on this gateway. Approve it from the gateway's host:"),
        h("pre", {}, `gatewayctl devices approve ${id}`),
        h("p", {}, "or from a browser already signed in (Devices). This page retries every few seconds.")));
      retryTimer = setTimeout(connect, 3000);
      return;
    }
    const closedAuth = /unauthorized/i.test(e.message);
    if (closedAuth) { signInForm(session.authMode, "Your sign-in ended: sign in again."); return; }
    setConn("disconnected", "off");
    clear(main, h("section.card", {}, h("h1", {}, "Cannot connect"), notice(e.message),
      h("p", {}, "Is gatewayd running? ", h("code", {}, "gatewayctl status"), " tells. Retrying…")));
    retryTimer = setTimeout(connect, 3000);
    return;
  }
  gateway = gw;
  setConn(gw.can("write") ? "connected" : "connected (read-only)", "on");
  signOutButton.hidden = !(session && session.authMode !== "none" && session.authMode !== "trusted-proxy");
  gw.addEventListener("close", (e) => {
    if (gw.closed) return;
    gateway = null;
    setConn("reconnecting", "busy");
    const code = e.detail.code;
    if (code === 4001 || code === 1008) { start(); return; }
    retryTimer = setTimeout(connect, code === 1012 ? 1000 : 2000);
  });
  await show();
}

async function start() {
  // A sign-in code from `gatewayctl dashboard` rides in the fragment: take it, drop it from the
  // address bar and the history at once, and trade it for the session cookie.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("code");
  if (code) history.replaceState(null, "", location.pathname + location.search);
  let message = null;
  if (code) {
    try { await uiSession("POST", { code }); } catch (e) { message = e.message; }
  }
  try {
    session = await uiSession("GET");
  } catch (e) {
    setConn("unreachable", "off");
    clear(main, h("section.card", {}, h("h1", {}, "Cannot reach the gateway"), notice(e.message)));
    return;
  }
  if (!session.signedIn) { signInForm(session.authMode, message, "error"); return; }
  await connect();
}

window.addEventListener("popstate", show);
start();
export { GatewayError };
