//! The Control UI's HTTP side without a browser: what is served where, with which headers; the
//! sign-in exchanges and their refusals (CSRF, wrong or reused codes); what the cookie opens and
//! what it does not; and the ends of a browser session (sign-out, token rotation, revocation).

use gateway_tests::http1::{request, Reply};
use gateway_tests::{control, Daemon, Home};
use serde_json::{json, Value};

fn origin(d: &Daemon) -> String {
    format!("http://localhost:{}", d.port)
}

fn get(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(d.port, "GET", path, headers, None).unwrap()
}

/// A call to `/gateway/ui/session` as the UI's own page makes it.
fn ui_call(d: &Daemon, method: &str, body: Option<&Value>, cookie: Option<&str>) -> Reply {
    let origin = origin(d);
    let cookie_header = cookie.map(|c| format!("gateway_ui_{}={c}", d.port));
    let mut headers = vec![("Origin", origin.as_str()), ("x-gateway-csrf", "1")];
    if let Some(c) = &cookie_header {
        headers.push(("Cookie", c.as_str()));
    }
    let body = body.map(Value::to_string);
    request(d.port, method, "/gateway/ui/session", &headers, body.as_deref()).unwrap()
}

/// A one-time code from the control socket, as `gatewayctl dashboard` gets it.
fn code(home: &Home) -> String {
    let link = control(&home.socket(None), "POST", "/v1/ui/code");
    let url = link["url"].as_str().unwrap();
    url.split_once("#code=").expect("the code rides in the fragment").1.to_owned()
}

/// The session cookie's value from a sign-in answer.
fn cookie_of(reply: &Reply, port: u16) -> String {
    let set = reply.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie: {}", reply.body));
    let prefix = format!("gateway_ui_{port}=");
    assert!(set.starts_with(&prefix), "{set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
    set[prefix.len()..].split(';').next().unwrap().to_owned()
}

#[test]
fn the_ui_is_served_with_strict_headers_and_its_views_fall_back_to_the_shell() {
    let home = Home::new();
    let d = home.start_with("");
    let root = get(&d, "/", &[]);
    assert_eq!((root.status, root.header("location")), (303, Some("/ui/")));
    let webchat = get(&d, "/webchat", &[]);
    assert_eq!((webchat.status, webchat.header("location")), (303, Some("/ui/chat")));
    assert_eq!(get(&d, "/ui", &[]).header("location"), Some("/ui/"));

    let shell = get(&d, "/ui/", &[]);
    assert_eq!(shell.status, 200);
    assert_eq!(shell.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = shell.header("content-security-policy").unwrap();
    for part in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(shell.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(shell.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(shell.header("cache-control"), Some("no-cache"));
    assert!(shell.body.contains("/ui/app.js"), "the mount path is filled in: {}", shell.body);
    assert!(!shell.body.contains("<script>"), "no inline script");

    // A view's path is the shell; a file has its type; a revalidation is a 304.
    let view = get(&d, "/ui/sessions/main", &[]);
    assert_eq!((view.status, view.body.as_str()), (200, shell.body.as_str()));
    let js = get(&d, "/ui/app.js", &[]);
    assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    let etag = js.header("etag").unwrap().to_owned();
    assert_eq!(get(&d, "/ui/app.js", &[("If-None-Match", &etag)]).status, 304);
    assert_eq!(get(&d, "/ui/style.css", &[]).header("content-type"), Some("text/css; charset=utf-8"));
    // A missing file is a 404, and the API paths keep theirs.
    assert_eq!(get(&d, "/ui/nothing.js", &[]).status, 404);
    let bearer = format!("Bearer {}", home.token());
    assert_eq!(get(&d, "/v1/nothing", &[("Authorization", &bearer)]).status, 404);
}

#[test]
fn a_turned_off_ui_answers_404_and_issues_no_codes() {
    let home = Home::new();
    let d = home.start_with("[ui]\nenabled = false\n");
    for path in ["/", "/ui/", "/ui/chat", "/webchat"] {
        assert_eq!(get(&d, path, &[]).status, 404, "{path}");
    }
    let (status, body) = gateway_tests::unix_http(&home.socket(None), "POST", "/v1/ui/code", &[]).unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("ui.enabled"), "{body}");
    let out = home.ctl(&["dashboard", "--no-open"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ui.enabled = true"), "{out:?}");
}

#[test]
fn a_dashboard_code_signs_in_once_and_the_cookie_opens_only_the_ui() {
    let home = Home::new();
    let d = home.start_with("");
    let out = home.ctl(&["dashboard", "--no-open", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let link: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(link["opened"], false);
    assert_eq!(link["ui_url"], format!("http://127.0.0.1:{}/ui/", d.port));
    let code = link["url"].as_str().unwrap().split_once("#code=").unwrap().1.to_owned();

    let before = ui_call(&d, "GET", None, None);
    assert_eq!(before.json()["signedIn"], false);
    let signed = ui_call(&d, "POST", Some(&json!({ "code": code })), None);
    assert_eq!(signed.status, 201, "{}", signed.body);
    assert_eq!(signed.header("cache-control"), Some("no-store"));
    let cookie = cookie_of(&signed, d.port);
    assert_eq!(ui_call(&d, "GET", None, Some(&cookie)).json()["signedIn"], true);

    // Single use.
    let again = ui_call(&d, "POST", Some(&json!({ "code": code })), None);
    assert_eq!(again.status, 401);
    assert!(again.body.contains("gatewayctl dashboard"), "{}", again.body);

    // The cookie is no credential on the APIs.
    let cookie_header = format!("gateway_ui_{}={cookie}", d.port);
    let o = origin(&d);
    for path in ["/gateway/sessions", "/v1/models", "/gateway/memory/main"] {
        let r = get(&d, path, &[("Cookie", &cookie_header), ("Origin", &o), ("x-gateway-csrf", "1")]);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }

    // Listed among the sign-ins as a browser session; the status counts it.
    let signins = control(&home.socket(None), "GET", "/v1/signins");
    assert_eq!(signins["sessions"][0]["kind"], "browser", "{signins}");
    let listed = String::from_utf8(home.ctl(&["signins", "list"]).stdout).unwrap();
    assert!(listed.contains("  browser  created "), "{listed}");
    let status = control(&home.socket(None), "GET", "/v1/status");
    assert_eq!(status["web_ui"]["active_sessions"], 1, "{status}");
    assert_eq!(status["web_ui"]["sign_ins"], 1);
    assert_eq!(status["web_ui"]["sign_in_failures"], 1);
    assert_eq!(status["web_ui"]["path"], "/ui");
    // The runbook's place for it, with the sign-in path and the admin policy gates.
    assert_eq!(status["gateway"]["web_ui"], status["web_ui"]);
    assert_eq!(status["web_ui"]["sign_in_path"], "/gateway/ui/session");
    assert_eq!(status["web_ui"]["allow_session_write"], true);

    // Sign-out ends it.
    let out = ui_call(&d, "DELETE", None, Some(&cookie));
    assert_eq!(out.json()["ended"], true);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(ui_call(&d, "GET", None, Some(&cookie)).json()["signedIn"], false);
}

#[test]
fn sign_in_refuses_other_sites_and_wrong_secrets() {
    let home = Home::new();
    let d = home.start_with("");
    let token = home.token();
    let body = json!({ "token": token }).to_string();
    // Without the CSRF header: refused, and nothing counts as a failure.
    let o = origin(&d);
    let bare = request(d.port, "POST", "/gateway/ui/session", &[("Origin", &o)], Some(&body)).unwrap();
    assert_eq!(bare.status, 403, "{}", bare.body);
    assert!(bare.body.contains("x-gateway-csrf"), "{}", bare.body);
    // From another origin, even with the header: refused before anything else.
    let foreign = request(
        d.port,
        "POST",
        "/gateway/ui/session",
        &[("Origin", "http://evil.example"), ("x-gateway-csrf", "1")],
        Some(&body),
    )
    .unwrap();
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    // A wrong token and a password in token mode.
    let wrong = ui_call(&d, "POST", Some(&json!({ "token": "not-the-token" })), None);
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("gatewayctl token show"), "{}", wrong.body);
    let password = ui_call(&d, "POST", Some(&json!({ "password": "whatever-it-is" })), None);
    assert_eq!(password.status, 400);
    assert!(password.body.contains("signs in with its token"), "{}", password.body);
    // The right token signs in.
    let ok = ui_call(&d, "POST", Some(&json!({ "token": token })), None);
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[test]
fn rotating_the_token_and_revoking_the_sign_in_end_browser_sessions() {
    let home = Home::new();
    let d = home.start_with("");
    let first = cookie_of(&ui_call(&d, "POST", Some(&json!({ "code": code(&home) })), None), d.port);
    let second = cookie_of(&ui_call(&d, "POST", Some(&json!({ "code": code(&home) })), None), d.port);
    assert_eq!(ui_call(&d, "GET", None, Some(&first)).json()["signedIn"], true);

    let signins = control(&home.socket(None), "GET", "/v1/signins");
    let id = signins["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert!(home.ctl(&["signins", "revoke", &id]).status.success());
    let still: Vec<bool> = [&first, &second]
        .iter()
        .map(|c| ui_call(&d, "GET", None, Some(c)).json()["signedIn"].as_bool().unwrap())
        .collect();
    assert_eq!(still.iter().filter(|s| **s).count(), 1, "one revoked, one left: {still:?}");

    assert!(home.ctl(&["token", "rotate"]).status.success());
    for c in [&first, &second] {
        assert_eq!(ui_call(&d, "GET", None, Some(c)).json()["signedIn"], false, "the token changed");
    }
    assert_eq!(control(&home.socket(None), "GET", "/v1/signins")["sessions"], json!([]));
}

#[test]
fn a_ui_path_can_be_moved_but_not_onto_an_api() {
    let home = Home::new();
    let d = home.start_with("[ui]\npath = \"/console\"\n");
    assert_eq!(get(&d, "/", &[]).header("location"), Some("/console/"));
    let shell = get(&d, "/console/chat", &[]);
    assert!(shell.body.contains("/console/app.js"), "{}", shell.body);
    assert_eq!(get(&d, "/ui/", &[]).status, 404);
    drop(d);

    home.write_config(None, "[ui]\npath = \"/v1\"\n");
    let out = home.ctl(&["config", "validate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("ui.path") && err.contains("belongs to the gateway's HTTP APIs"), "{err}");
}

#[test]
fn password_mode_signs_the_browser_in_with_the_password_and_a_new_password_signs_it_out() {
    let home = Home::new();
    home.write_config(None, "[gateway.auth]\nmode = \"password\"\n");
    assert!(home.ctl_input(&["password", "set", "--stdin"], "browser-password\n").status.success());
    let d = home.start(&["--port", &gateway_tests::free_port().to_string()]);
    assert_eq!(ui_call(&d, "GET", None, None).json()["authMode"], "password");
    let wrong = ui_call(&d, "POST", Some(&json!({ "password": "not-it-at-all" })), None);
    assert_eq!(wrong.status, 401);
    let token = ui_call(&d, "POST", Some(&json!({ "token": "some-token" })), None);
    assert_eq!(token.status, 400);
    assert!(token.body.contains("signs in with its password"), "{}", token.body);
    let signed = ui_call(&d, "POST", Some(&json!({ "password": "browser-password" })), None);
    assert_eq!(signed.status, 201, "{}", signed.body);
    let cookie = cookie_of(&signed, d.port);
    // A browser's cookie is no bearer session token.
    let bearer = format!("Bearer {cookie}");
    assert_eq!(get(&d, "/gateway/status", &[("Authorization", &bearer)]).status, 401);
    // The dashboard's code works in password mode too.
    let by_code = ui_call(&d, "POST", Some(&json!({ "code": code(&home) })), None);
    assert_eq!(by_code.status, 201, "{}", by_code.body);

    assert!(home.ctl_input(&["password", "set", "--stdin"], "another-password\n").status.success());
    assert_eq!(ui_call(&d, "GET", None, Some(&cookie)).json()["signedIn"], false);
    assert_eq!(ui_call(&d, "GET", None, Some(&cookie_of(&by_code, d.port))).json()["signedIn"], false);
}
