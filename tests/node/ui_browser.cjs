// The Control UI in a real headless Chromium (Debian's, driven by playwright-core; it never
// downloads a browser), against the real gatewayd that tests/e2e/ui_browser.rs started. Each step
// is what a person does; an assertion that fails ends the script with a message and a screenshot.
//
// Environment: GATEWAY_PORT, GATEWAY_TOKEN, GATEWAYCTL (the binary, run with this process's
// environment, so it finds the same daemon), CHROMIUM (the browser), SHOTS (a directory for
// screenshots), SLOW_MODEL (a model that streams slowly), TOOL_MODEL (one that calls a tool).
// Prints one JSON line per step and, last, {"ok": true, ...} with what the caller checks
// afterwards (the code and cookie must appear in no log).

"use strict";
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { chromium } = require("playwright-core");
const WebSocket = require("ws");

const PORT = Number(process.env.GATEWAY_PORT);
const TOKEN = process.env.GATEWAY_TOKEN;
const BASE = `http://127.0.0.1:${PORT}`;
const SHOTS = process.env.SHOTS;
const TIMEOUT = 15000;
const report = {};
const consoleErrors = [];
const requestedUrls = [];

function step(name, detail = {}) {
  process.stdout.write(JSON.stringify({ step: name, ...detail }) + "\n");
}

function ctl(...args) {
  return execFileSync(process.env.GATEWAYCTL, args, { encoding: "utf8" });
}

function dashboardLink() {
  const out = JSON.parse(ctl("dashboard", "--no-open", "--json"));
  assert.equal(out.opened, false);
  return out.url;
}

async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  page.on("request", (r) => requestedUrls.push(r.url()));
  return { context, page };
}

async function connected(page, readOnly = false) {
  await page.waitForSelector(`#conn[data-state="on"]`);
  const text = await page.textContent("#conn");
  assert.equal(text, readOnly ? "connected (read-only)" : "connected");
}

async function openView(page, title) {
  await page.click(`nav a:text-is("${title}")`);
  await page.waitForFunction((t) => document.title.startsWith(t), title);
}

/** A device of another host (through the trusted proxy): its connect waits for approval. */
function pendingDevice() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const id = crypto.createHash("sha256").update(raw).digest("hex");
  const b64 = (b) => Buffer.from(b).toString("base64url");
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${PORT}/`, { headers: { "X-Forwarded-For": "203.0.113.9" } });
    ws.on("error", reject);
    ws.on("message", (data) => {
      const frame = JSON.parse(data);
      if (frame.type === "event" && frame.event === "connect.challenge") {
        const client = { id: "phone-app", version: "1", platform: "android", mode: "ui", displayName: "Phone" };
        const scopes = ["operator.read", "operator.write"];
        const signedAt = Date.now();
        const nonce = frame.payload.nonce;
        const payload = ["v2", id, client.id, client.mode, "operator", scopes.join(","), String(signedAt), TOKEN, nonce].join("|");
        const signature = crypto.sign(null, Buffer.from(payload), privateKey);
        ws.send(JSON.stringify({ type: "req", id: "c", method: "connect", params: {
          minProtocol: 4, maxProtocol: 4, client, role: "operator", scopes, auth: { token: TOKEN },
          device: { id, publicKey: b64(raw), signature: b64(signature), signedAt, nonce } } }));
      } else if (frame.type === "res") {
        ws.close();
        if (frame.ok) reject(new Error("a device from another host was paired without approval"));
        else resolve({ id, requestId: frame.error.details.requestId });
      }
    });
  });
}

/** Connects with a cookie and the gateway's Origin, no token; resolves with the refusal. */
function connectWithCookie(cookie) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${PORT}/`, { headers: { Origin: BASE, Cookie: cookie } });
    ws.on("error", (e) => resolve(`error ${e.message}`));
    ws.on("close", (code, reason) => resolve(`closed ${code} ${reason}`));
    ws.on("message", (data) => {
      const frame = JSON.parse(data);
      if (frame.type === "event" && frame.event === "connect.challenge") {
        ws.send(JSON.stringify({ type: "req", id: "c", method: "connect", params: {
          minProtocol: 4, maxProtocol: 4, client: { id: "x", mode: "ui" }, role: "operator", scopes: [] } }));
      } else if (frame.type === "res") {
        if (frame.ok) reject(new Error("an ended browser session still connects"));
        else resolve(frame.error.message);
        ws.close();
      }
    });
  });
}

/** A page of another site on this host (same site for cookies, another origin). */
function evilSite() {
  const page = `<!doctype html><script>
    window.results = {};
    const ws = new WebSocket("ws://127.0.0.1:${PORT}/");
    ws.onopen = () => { window.results.ws = "open"; };
    ws.onclose = () => { window.results.ws = window.results.ws || "refused"; };
    fetch("${BASE}/gateway/ui/session", { method: "DELETE", credentials: "include", headers: { "x-gateway-csrf": "1" } })
      .then(() => { window.results.fetch = "sent"; }, () => { window.results.fetch = "blocked"; });
    fetch("${BASE}/gateway/ui/session", { method: "POST", mode: "no-cors", credentials: "include", body: "{}" })
      .then(() => { window.results.simple = "sent"; }, () => { window.results.simple = "blocked"; });
  </script>`;
  const server = http.createServer((req, res) => { res.setHeader("content-type", "text/html"); res.end(page); });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function main() {
  fs.rmSync(SHOTS, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  let failing = null;
  try {
    const { context, page } = await newPage(browser);
    failing = page;

    // 1. Sign in with the dashboard's link; the code leaves the address bar and works once.
    const link = dashboardLink();
    const code = link.split("#code=")[1];
    await page.goto(link);
    await connected(page);
    assert.ok(!page.url().includes("code"), `the code stayed in the address bar: ${page.url()}`);
    assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");
    const timing = await page.evaluate(() => ({
      firstPaint: (performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime,
      interactive: performance.now(),
    }));
    report.firstPaintMs = Math.round(timing.firstPaint);
    report.interactiveMs = Math.round(timing.interactive);
    const [cookie] = (await context.cookies()).filter((c) => c.name === `gateway_ui_${PORT}`);
    assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", `the session cookie: ${JSON.stringify(cookie)}`);
    assert.equal(await page.evaluate((name) => document.cookie.includes(name), cookie.name), false, "HttpOnly: scripts do not see it");
    step("signed in", report);
    {
      const again = await newPage(browser);
      await again.page.goto(link);
      await again.page.waitForSelector("form.signin .notice.error");
      assert.match(await again.page.textContent("form.signin .notice.error"), /used or expired/);
      await again.context.close();
      step("a used code is refused");
    }

    // 2. Chat with the echo model; the answer streams from a slow model; tool calls inline.
    await openView(page, "Chat");
    await page.fill("#message", "hello from the browser");
    await page.press("#message", "Enter");
    await page.waitForSelector('.msg.assistant:not(.streaming) .text:text-is("hello from the browser")');
    step("echo answered");
    await page.selectOption("#model", process.env.SLOW_MODEL);
    await page.fill("#message", "count for me");
    await page.click("#send");
    await page.waitForSelector(".msg.assistant.streaming .text:not(:empty)");
    const partial = await page.textContent(".msg.assistant.streaming .text");
    await page.waitForSelector(".msg.assistant:not(.streaming) .text:has-text('w12')");
    const whole = await page.textContent(".msg.assistant:not(.streaming) .text:has-text('w12')");
    assert.ok(partial.length < whole.length, `streamed: "${partial}" came before "${whole}"`);
    step("streamed", { partial, whole });
    await page.selectOption("#model", process.env.ABORT_MODEL);
    await page.fill("#message", "a long answer please");
    await page.click("#send");
    await page.waitForSelector(".msg.assistant.streaming .text:not(:empty)");
    await page.click("#abort");
    await page.waitForSelector('.transcript .notice.info:text-is("stopped")');
    step("aborted");
    await page.selectOption("#model", process.env.TOOL_MODEL);
    await page.fill("#message", "what time is it?");
    await page.click("#send");
    await page.waitForSelector('details.tool summary:text-is("tool call: time")');
    await page.waitForSelector(".msg.tool summary:text-is('tool result')");
    await shot(page, "chat-desktop");
    step("tool call shown");
    for (let i = 1; i <= 130; i++) {
      const res = await fetch(`${BASE}/gateway/sessions/long/append`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ role: i % 2 ? "user" : "assistant", content: `message ${i}`, policy_gate: "allow_session_write" }),
      });
      assert.equal(res.status < 300, true, `append ${i}: ${res.status}`);
    }
    await page.goto(`${BASE}/ui/chat/long`);
    await connected(page);
    await page.waitForSelector('.msg .text:text-is("message 130")');
    assert.equal(await page.locator(".transcript .msg").count(), 100, "the latest 100 first");
    await page.click("#earlier");
    await page.waitForSelector('.msg .text:text-is("message 1")');
    assert.equal(await page.locator(".transcript .msg").count(), 130);
    step("scrolled back");

    // 3. Sessions: create, search, open, append a note, reset, delete.
    await openView(page, "Sessions");
    await page.fill('input[name="newkey"]', "ui-e2e");
    await page.click('form.inline button:text-is("Create session")');
    await page.waitForSelector('h1:text-is("ui-e2e")');
    await page.fill('input[name="notename"]', "colour");
    await page.fill('input[name="notevalue"]', "blue");
    await page.click('button:text-is("Append note")');
    await page.waitForSelector('.notice.info:text-is("Note colour saved.")');
    page.once("dialog", (d) => d.accept());
    await page.click("#reset");
    await page.waitForSelector('h1:text-is("ui-e2e")');
    page.once("dialog", (d) => d.accept());
    await page.click("#delete");
    await page.waitForSelector("#session-search");
    await page.fill("#session-search", "ui-e2e");
    await page.waitForSelector('td:text-is("No sessions.")');
    await page.fill("#session-search", "main");
    await page.waitForSelector('td a:text-is("main")');
    step("sessions");

    // 4. Memory: add, edit, delete a note on the main session.
    await openView(page, "Memory");
    await page.selectOption("#memory-session", "main");
    await page.waitForFunction(() => location.pathname.endsWith("/memory/main"));
    await page.fill("#note-name", "favourite");
    await page.fill("#note-value", "tea");
    await page.click('button:text-is("Add note")');
    await page.waitForSelector('article.note[data-name="favourite"]');
    await page.fill('article.note[data-name="favourite"] textarea', "green tea");
    await page.click('article.note[data-name="favourite"] button:text-is("Save")');
    await page.waitForSelector('.notice.info:text-is("Saved favourite.")');
    assert.equal(await page.inputValue('article.note[data-name="favourite"] textarea'), "green tea");
    await page.fill("#note-name", "scratch");
    await page.fill("#note-value", "to delete");
    await page.click('button:text-is("Add note")');
    page.once("dialog", (d) => d.accept());
    await page.click('article.note[data-name="scratch"] button:text-is("Delete")');
    await page.waitForSelector('article.note[data-name="scratch"]', { state: "detached" });
    step("memory");

    // 5. Devices: a device of another host waits; approve it here.
    const device = await pendingDevice();
    await openView(page, "Devices");
    await page.waitForSelector(`li[data-request="${device.requestId}"]`);
    await page.click(`li[data-request="${device.requestId}"] button:text-is("Approve")`);
    await page.waitForSelector(`li[data-device="${device.id}"]`);
    step("device approved", device);

    // 6. Config: an edit applies (a new generation); a broken one is refused with its line.
    await openView(page, "Config");
    const generation = Number(await page.textContent("#config-generation"));
    const text = await page.inputValue("#config-text");
    assert.match(text, /interval_ms = 30000/);
    await page.fill("#config-text", text.replace("interval_ms = 30000", "interval_ms = 31000"));
    await page.click("#config-apply");
    await page.waitForSelector('#config-status .notice.info:has-text("Applied")');
    assert.equal(Number(await page.textContent("#config-generation")), generation + 1);
    const edited = await page.inputValue("#config-text");
    const broken = edited.replace("interval_ms = 31000", "interval_ms = 31000\nbeat_forever = true");
    const brokenLine = broken.split("\n").findIndex((l) => l.startsWith("beat_forever")) + 1;
    await page.fill("#config-text", broken);
    await page.click("#config-apply");
    await page.waitForSelector("#config-status .errors li");
    const refusal = await page.textContent("#config-status .errors li");
    assert.ok(refusal.includes(`:${brokenLine}`) && refusal.includes("beat_forever"), `the refusal names line ${brokenLine}: ${refusal}`);
    assert.equal(Number(await page.textContent("#config-generation")), generation + 1, "the refused edit changed nothing");
    await shot(page, "config-refused-desktop");
    step("config", { refusal });

    // 7. Logs: a new line arrives live; paused, nothing arrives until resumed.
    await page.fill("#config-text", edited);
    await openView(page, "Logs");
    await page.waitForSelector("#log-lines .line");
    const issued = () => page.locator('#log-lines .line:has-text("sign-in link issued")').count();
    const links = await issued();
    dashboardLink();
    await page.waitForFunction((n) => [...document.querySelectorAll("#log-lines .line")].filter((l) => l.textContent.includes("sign-in link issued")).length > n, links);
    await page.click("#log-pause");
    const before = await page.locator("#log-lines .line").count();
    dashboardLink();
    await page.waitForTimeout(2500);
    assert.equal(await page.locator("#log-lines .line").count(), before, "a paused tail shows nothing new");
    await page.click("#log-pause");
    await page.waitForFunction((n) => document.querySelectorAll("#log-lines .line").length > n, before);
    step("logs");

    // 8. Screenshots of every view, desktop and phone.
    const views = ["Overview", "Chat", "Sessions", "Memory", "Tools", "Devices", "Config", "Logs"];
    for (const [size, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
      await page.setViewportSize(viewport);
      for (const view of views) {
        await openView(page, view);
        await page.waitForTimeout(400);
        await shot(page, `${view.toLowerCase()}-${size}`);
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: "dark" });
    for (const view of ["Overview", "Chat"]) {
      await openView(page, view);
      await page.waitForTimeout(400);
      await shot(page, `${view.toLowerCase()}-dark`);
    }
    await page.emulateMedia({ colorScheme: "light" });
    step("screenshots");

    // 9. Tools: a dry run from the form.
    await openView(page, "Tools");
    await page.selectOption("#tool-name", "time");
    await page.click('button:text-is("Dry run")');
    await page.waitForSelector('#tool-result .notice.info:text-is("time: this call would be allowed.")');
    step("tool dry run");

    // 10. Another site on this host cannot use the cookie.
    const evil = await evilSite();
    {
      const other = await context.newPage();
      await other.goto(`http://127.0.0.1:${evil.address().port}/`);
      await other.waitForFunction(() => window.results.ws && window.results.fetch && window.results.simple);
      const results = await other.evaluate(() => window.results);
      assert.equal(results.ws, "refused", "a WebSocket from another origin");
      assert.equal(results.fetch, "blocked", "a cross-origin call with the CSRF header");
      await other.close();
      const still = await page.evaluate(async () => (await (await fetch("/gateway/ui/session", { headers: { "x-gateway-csrf": "1" } })).json()).signedIn);
      assert.equal(still, true, "the other site signed nobody out");
      step("csrf refused", results);
    }
    evil.close();

    // 11. A read-only browser: no write buttons, and a forged write is refused by the gateway.
    {
      const ro = await newPage(browser);
      await ro.page.goto(`${BASE}/ui/`);
      await ro.page.waitForSelector("form.signin");
      await ro.page.fill("#secret", TOKEN);
      await ro.page.check("#readonly");
      await ro.page.click('form.signin button[type="submit"]');
      await connected(ro.page, true);
      await ro.page.goto(`${BASE}/ui/sessions/main`);
      await connected(ro.page, true);
      await ro.page.waitForSelector('h1:text-is("main")');
      assert.equal(await ro.page.locator("#reset, #delete, button:text-is('Append note')").count(), 0, "no write buttons");
      assert.equal(await ro.page.locator('nav a:text-is("Devices")').count(), 0, "no devices view");
      await ro.page.goto(`${BASE}/ui/chat`);
      await connected(ro.page, true);
      assert.equal(await ro.page.isDisabled("#send"), true, "no sending");
      await shot(ro.page, "read-only-chat-desktop");
      const forged = await ro.page.evaluate(async () => {
        const { Gateway } = await import("/ui/gateway.js");
        const gw = new Gateway({ scopes: ["operator.admin", "operator.write", "operator.read"] });
        await gw.connect();
        try { await gw.request("sessions.delete", { key: "main" }); return "allowed"; } catch (e) { return `${e.code}: ${e.message}`; }
      });
      assert.match(forged, /^FORBIDDEN/, `a forged write: ${forged}`);
      step("read-only", { forged });
      await ro.context.close();
    }

    // 12. Sign out: the cookie no longer opens anything.
    const cookieHeader = `${cookie.name}=${cookie.value}`;
    await page.click("#signout");
    await page.waitForSelector("form.signin");
    const refused = await connectWithCookie(cookieHeader);
    assert.match(refused, /unauthorized|token missing/i, `after sign-out: ${refused}`);
    step("signed out", { refused });

    // 13. Rotating the gateway token ends the browser sessions it vouched for.
    {
      const other = await newPage(browser);
      await other.page.goto(dashboardLink());
      await connected(other.page);
      ctl("token", "rotate");
      await other.page.waitForSelector("form.signin");
      step("token rotated: signed out");
      await other.context.close();
    }

    const csp = consoleErrors.filter((e) => /Content Security Policy|Refused to/i.test(e));
    assert.deepEqual(csp, [], "the UI runs under its CSP");
    const leaked = requestedUrls.filter((u) => u.includes(code) || u.includes(TOKEN) || u.includes(cookie.value));
    assert.deepEqual(leaked, [], "no secret in any URL");
    process.stdout.write(JSON.stringify({ ok: true, code, cookie: cookie.value, ...report, consoleErrors }) + "\n");
  } catch (e) {
    if (failing) await shot(failing, "failure").catch(() => {});
    process.stderr.write(`${e.stack || e}\nconsole errors: ${JSON.stringify(consoleErrors)}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

main();
