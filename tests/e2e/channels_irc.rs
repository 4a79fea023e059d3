//! The assistant on IRC, against a real IRC server (Debian's ngircd, `gateway_tests::irc`) with
//! people played by small IRC clients: pairing a stranger end to end, allowlists, groups that
//! answer only mentions, long replies cut into lines, reconnecting after the server restarts,
//! probes, hot reload of accounts, and a message answered exactly once across a kill -9.

use std::time::Duration;

use gateway_tests::irc::{IrcServer, IrcUser, SERVER_PASSWORD};
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const BOT: &str = "gwbot";
const QUIET: Duration = Duration::from_millis(1500);
const ANSWER: Duration = Duration::from_secs(15);

fn account(server: &IrcServer, id: &str, nick: &str, extra: &str) -> String {
    format!(
        "[channels.irc.accounts.{id}]\nhost = \"127.0.0.1\"\nport = {}\ntls = false\nnick = \"{nick}\"\n\
         password = \"{SERVER_PASSWORD}\"\nauth = \"server\"\nchannels = [\"#lobby\"]\n{extra}\n",
        server.port
    )
}

fn channels(home: &Home, probe: bool) -> Value {
    let mut args = vec!["channels", "status", "--json"];
    if probe {
        args.push("--probe");
    }
    let out = home.ctl(&args);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn irc_account(report: &Value, id: &str) -> Value {
    report["channelAccounts"]["irc"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no account {id} in {report}"))
}

fn wait_connected(home: &Home, id: &str) -> Value {
    wait_for(Duration::from_secs(20), "the IRC account to connect", || {
        let a = irc_account(&channels(home, false), id);
        (a["connected"] == true).then_some(a)
    })
}

#[test]
fn a_stranger_pairs_with_a_code_the_owner_approves_then_gets_answers() {
    let server = IrcServer::start();
    let home = Home::new();
    let _d = home.start_with(&account(&server, "main", BOT, ""));
    wait_connected(&home, "main");

    let mut alice = IrcUser::connect(&server, "alice");
    alice.say(BOT, "hello bot");
    let greeting = alice.message_from(BOT, ANSWER);
    let code = greeting.split("pairing code is ").nth(1).expect("a pairing code")[..8].to_owned();
    assert!(greeting.contains(&format!("gatewayctl pairing approve irc {code}")), "{greeting}");
    alice.say(BOT, "are you there?");
    assert_eq!(
        alice.try_expect(QUIET, |l| l.contains(" PRIVMSG alice ")),
        None,
        "nothing but the code, once"
    );

    let listed = home.ctl(&["pairing", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&code), "{listed:?}");
    let wrong = home.ctl(&["pairing", "approve", "irc", "ZZZZZZZZ"]);
    assert!(
        !wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("pairing list"),
        "{wrong:?}"
    );
    let approved = home.ctl(&["pairing", "approve", "irc", &code.to_lowercase()]);
    assert!(approved.status.success(), "{approved:?}");
    assert!(String::from_utf8_lossy(&approved.stdout).contains("alice"), "{approved:?}");

    alice.say(BOT, "hello again");
    assert_eq!(alice.message_from(BOT, ANSWER), "hello again", "the echo model answers");
    let status = irc_account(&channels(&home, false), "main");
    assert!(
        status["lastInboundAt"].as_u64().is_some() && status["lastOutboundAt"].as_u64().is_some(),
        "{status}"
    );
}

#[test]
fn groups_answer_mentions_from_allowed_senders_and_long_replies_come_in_lines() {
    let server = IrcServer::start();
    let up = Upstream::start();
    let home = Home::new();
    // The account's agent answers with 200 words: longer than an IRC line can hold.
    let extra = "dm_policy = \"allowlist\"\nallow_from = [\"carol\", \"bob!*@*\"]\ngroup_policy = \"allowlist\"\nagent = \"long\"\n";
    let config = format!(
        "{}\n[agents.long]\nmodel = \"up/words-200\"\n\n{}",
        upstream_provider(&up, &["words-200"]),
        account(&server, "main", BOT, extra)
    );
    let _d = home.start_with(&config);
    wait_connected(&home, "main");
    let words: Vec<String> = (1..=200).map(|i| format!("w{i}")).collect();

    let mut bob = IrcUser::connect(&server, "bob");
    bob.join("#lobby");
    let mut eve = IrcUser::connect(&server, "eve");
    eve.join("#lobby");
    bob.say("#lobby", "hello everyone");
    assert_eq!(bob.try_expect(QUIET, |l| l.contains(&format!(":{BOT}!"))), None, "no mention, no answer");
    eve.say("#lobby", &format!("{BOT}: answer me"));
    assert_eq!(eve.try_expect(QUIET, |l| l.contains(&format!(":{BOT}!"))), None, "eve is not allowed");
    bob.say("#lobby", &format!("{BOT}: what do you say?"));
    let line = bob.expect(ANSWER, |l| l.starts_with(&format!(":{BOT}!")) && l.contains("PRIVMSG #lobby"));
    assert!(line.ends_with(":w1 w2") || line.contains(":w1 w2 w3"), "the answer goes to the channel: {line}");

    let mut carol = IrcUser::connect(&server, "carol");
    carol.say(BOT, "tell me a lot");
    let mut got: Vec<String> = Vec::new();
    let mut lines = 0;
    while got.len() < words.len() {
        let piece = carol.message_from(BOT, ANSWER);
        assert!(piece.len() <= 400, "{} bytes", piece.len());
        lines += 1;
        got.extend(piece.split(' ').map(str::to_owned));
    }
    assert_eq!(got, words, "cut on spaces, nothing lost, in order");
    assert!(lines >= 3, "{lines} lines");
    let mut dave = IrcUser::connect(&server, "dave");
    dave.say(BOT, "hi");
    assert_eq!(dave.try_expect(QUIET, |l| l.contains(" PRIVMSG dave ")), None, "not in the allowlist");
}

#[test]
fn the_account_comes_back_after_the_server_restarts_and_probes_say_why_one_fails() {
    let mut server = IrcServer::start();
    let home = Home::new();
    let open = "dm_policy = \"open\"\nallow_from = [\"*\"]\n";
    let d = home.start_with(&account(&server, "main", BOT, open));
    wait_connected(&home, "main");
    let probe = irc_account(&channels(&home, true), "main");
    assert_eq!(probe["probe"]["ok"], true, "{probe}");
    let text = String::from_utf8(home.ctl(&["channels", "status", "--probe"]).stdout).unwrap();
    assert!(text.contains("IRC main: connected as gwbot") && text.contains("probe: works"), "{text}");

    server.restart();
    let back = wait_connected(&home, "main");
    assert!(back["reconnectAttempts"].as_u64().unwrap() >= 1, "{back}");
    let mut alice = IrcUser::connect(&server, "alice");
    alice.say(BOT, "still there?");
    assert_eq!(alice.message_from(BOT, ANSWER), "still there?");

    // Hot reload: a second account joins without touching the first; a bad password fails its probe.
    let first_since = back["lastConnectedAt"].as_u64().unwrap();
    let bad = account(&server, "second", "gwbot2", open).replace(SERVER_PASSWORD, "wrong-password");
    home.write_config(None, &(account(&server, "main", BOT, open) + &bad));
    assert!(home.ctl(&["reload"]).status.success());
    let report = channels(&home, true);
    let second = irc_account(&report, "second");
    assert_eq!(second["probe"]["ok"], false, "{second}");
    assert!(second["probe"]["error"].as_str().unwrap().contains("password"), "{second}");
    let first = irc_account(&report, "main");
    assert_eq!(
        (first["connected"].as_bool(), first["lastConnectedAt"].as_u64()),
        (Some(true), Some(first_since)),
        "untouched: {first}"
    );
    let out = home.ctl(&["channels", "status", "--probe"]);
    assert_eq!(out.status.code(), Some(1), "a failed probe is exit 1");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("IRC second: connecting")
            && printed.contains("probe failed: ")
            && printed.contains("Bad password"),
        "{out:?}"
    );

    // Removing it stops it; the first one stays.
    home.write_config(None, &account(&server, "main", BOT, open));
    assert!(home.ctl(&["reload"]).status.success());
    let after = channels(&home, false);
    assert_eq!(after["channelAccounts"]["irc"].as_array().unwrap().len(), 1, "{after}");
    alice.say(BOT, "and now?");
    assert_eq!(alice.message_from(BOT, ANSWER), "and now?");
    drop(d);

    // Without a daemon: what the config sets up, and says so.
    let offline = String::from_utf8(home.ctl(&["channels", "status"]).stdout).unwrap();
    assert!(
        offline.contains("gatewayd is not running") && offline.contains("IRC main: gwbot @ 127.0.0.1"),
        "{offline}"
    );
}

#[test]
fn a_message_taken_before_a_kill_9_is_answered_once_after_the_restart() {
    let server = IrcServer::start();
    let up = Upstream::start();
    let home = Home::new();
    let config = format!(
        "{}\n[agents.main]\nmodel = \"up/slow-first-byte-4000\"\n\n{}",
        upstream_provider(&up, &["slow-first-byte-4000"]),
        account(&server, "main", BOT, "dm_policy = \"open\"\nallow_from = [\"*\"]\n")
    );
    let port = free_port();
    home.write_config(None, &config);
    let d = home.start(&["--port", &port.to_string()]);
    wait_connected(&home, "main");
    let mut alice = IrcUser::connect(&server, "alice");
    alice.say(BOT, "remember this");
    wait_for(Duration::from_secs(10), "the run to reach the upstream", || {
        (!up.requests().is_empty()).then_some(())
    });
    d.signal(Signal::SIGKILL);
    drop(d);

    let _d = home.start(&["--port", &port.to_string()]);
    assert_eq!(alice.message_from(BOT, Duration::from_secs(30)), "remember this");
    assert_eq!(
        alice.try_expect(Duration::from_secs(6), |l| l.contains(" PRIVMSG alice ")),
        None,
        "answered once"
    );
}

#[test]
fn an_open_policy_without_a_star_is_refused_with_its_line_and_the_old_config_keeps_serving() {
    let server = IrcServer::start();
    let home = Home::new();
    let _d = home.start_with(&account(&server, "main", BOT, ""));
    wait_connected(&home, "main");
    home.write_config(None, &account(&server, "main", BOT, "dm_policy = \"open\"\n"));
    let out = home.ctl(&["config", "validate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(":9") && err.contains("channels.irc.accounts.main.dm_policy"),
        "{out:?}"
    );
    assert!(err.contains("allow_from = [\"*\"]"), "{err}");
    let reload = home.ctl(&["reload"]);
    assert!(!reload.status.success(), "{reload:?}");
    assert_eq!(irc_account(&channels(&home, false), "main")["connected"], true, "the account keeps serving");
}

#[test]
fn an_account_that_keeps_failing_shows_in_status_deep_and_doctor() {
    let server = IrcServer::start();
    let home = Home::new();
    let _d = home.start_with(&account(&server, "main", BOT, "").replace(SERVER_PASSWORD, "not-the-password"));
    wait_for(Duration::from_secs(20), "three failed attempts", || {
        (irc_account(&channels(&home, false), "main")["reconnectAttempts"].as_u64() >= Some(3)).then_some(())
    });
    let deep = home.ctl(&["status", "--deep"]);
    let text = String::from_utf8_lossy(&deep.stdout);
    assert_eq!(deep.status.code(), Some(1), "{text}");
    assert!(text.contains("Channels: irc main not connected (the server closed the connection"), "{text}");
    assert!(text.contains("channel account irc main keeps failing to connect"), "{text}");
    assert!(text.contains("Daemon health: degraded (channel_account_failing)"), "{text}");
    let doctor: Value = serde_json::from_slice(&home.ctl(&["doctor", "--json"]).stdout).unwrap();
    let check = doctor["checks"].as_array().unwrap().iter().find(|c| c["id"] == "channels").cloned().unwrap();
    assert_eq!(check["severity"], "warning", "{check}");
    assert!(check["fix"].as_str().unwrap().contains("channels status --probe"), "{check}");
}

#[test]
fn changing_one_account_reconnects_it_alone() {
    let server = IrcServer::start();
    let home = Home::new();
    let config = |other_channels: &str| {
        account(&server, "main", BOT, "")
            + &account(&server, "other", "gwbot2", "").replace("[\"#lobby\"]", other_channels)
    };
    let _d = home.start_with(&config("[\"#lobby\"]"));
    let main = wait_connected(&home, "main");
    let other = wait_connected(&home, "other");
    home.write_config(None, &config("[\"#lobby\", \"#more\"]"));
    assert!(home.ctl(&["reload"]).status.success());
    // Its nick comes back to it even if the old connection still held it for a moment.
    wait_for(Duration::from_secs(30), "the changed account to reconnect as gwbot2", || {
        let a = irc_account(&channels(&home, false), "other");
        (a["connected"] == true && a["lastConnectedAt"] != other["lastConnectedAt"] && a["name"] == "gwbot2")
            .then_some(a)
    });
    let kept = irc_account(&channels(&home, false), "main");
    assert_eq!(kept["lastConnectedAt"], main["lastConnectedAt"], "the other account kept its connection");
    let mut bob = IrcUser::connect(&server, "bob");
    bob.join("#more");
    bob.send("NAMES #more");
    bob.expect(Duration::from_secs(10), |l| l.contains(" 353 ") && l.contains("gwbot2"));
}

#[test]
fn tls_trusts_the_servers_private_ca_only_when_given_and_says_why_otherwise() {
    let server = IrcServer::start_tls();
    let (tls_port, ca) = server.tls.clone().unwrap();
    let home = Home::new();
    let tls = |id: &str, nick: &str, extra: &str| {
        account(&server, id, nick, extra).replace(
            &format!("port = {}\ntls = false", server.port),
            &format!("port = {tls_port}\ntls = true"),
        )
    };
    let trusted =
        format!("tls_ca = \"{}\"\ndm_policy = \"allowlist\"\nallow_from = [\"alice\"]\n", ca.display());
    let _d = home.start_with(&(tls("main", BOT, &trusted) + &tls("untrusted", "gwbot2", "")));
    wait_connected(&home, "main");

    let mut alice = IrcUser::connect(&server, "alice");
    alice.say(BOT, "over tls");
    assert_eq!(alice.message_from(BOT, ANSWER), "over tls");

    // Without tls_ca the web's roots do not know the test CA: never connected, and the probe says so.
    let report = channels(&home, true);
    let untrusted = irc_account(&report, "untrusted");
    assert_eq!(
        (untrusted["connected"].clone(), untrusted["probe"]["ok"].clone()),
        (false.into(), false.into())
    );
    let why = untrusted["probe"]["error"].as_str().unwrap_or_default();
    assert!(why.contains("TLS with 127.0.0.1") && why.contains("needs tls_ca"), "{untrusted}");
    assert_eq!(irc_account(&report, "main")["probe"]["ok"], true, "{report}");
}

#[test]
fn a_nick_the_server_refuses_is_reported_as_such_not_retried_as_taken() {
    // ngircd's default NICKLEN is 9, the least the IRC RFCs allow.
    let server = IrcServer::start();
    let home = Home::new();
    let _d = home.start_with(&account(&server, "main", "averylongbotnick", ""));
    let a = wait_for(Duration::from_secs(20), "the account's error", || {
        let a = irc_account(&channels(&home, false), "main");
        a["lastError"].as_str().is_some().then_some(a)
    });
    let error = a["lastError"].as_str().unwrap();
    assert!(error.contains("refuses the nick averylongbotnick") && error.contains("set another nick"), "{a}");
    assert_eq!(a["connected"], false);
}

#[test]
fn a_scheduled_job_announces_its_answer_to_an_irc_peer() {
    let server = IrcServer::start();
    let home = Home::new();
    let _d = home.start_with(&account(&server, "main", BOT, ""));
    wait_connected(&home, "main");
    let mut alice = IrcUser::connect(&server, "alice");
    let out = home.ctl(&[
        "cron",
        "add",
        "--name",
        "remind",
        "--at",
        "+1s",
        "--message",
        "time to stretch",
        "--deliver",
        "irc:alice",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(alice.message_from(BOT, ANSWER), "time to stretch");
    let runs: Value = wait_for(Duration::from_secs(10), "the run's delivery recorded", || {
        let out = home.ctl(&["cron", "runs", "remind", "--json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
        (runs[0]["delivery"] == "delivered").then_some(runs)
    });
    assert_eq!(runs[0]["status"], "ok", "{runs}");

    // A channel with no running account: the run is ok, its delivery failed, and says why.
    let out = home.ctl(&[
        "cron",
        "add",
        "--name",
        "nowhere",
        "--at",
        "+1s",
        "--message",
        "x",
        "--deliver",
        "matrix:!room:hs",
    ]);
    assert!(out.status.success(), "{out:?}");
    let why = wait_for(Duration::from_secs(15), "the failed delivery", || {
        let out = home.ctl(&["cron", "runs", "nowhere", "--json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).ok()?;
        (runs[0]["delivery"] == "failed").then(|| runs[0]["deliveryError"].as_str().unwrap_or("").to_owned())
    });
    assert!(
        why.contains("no running matrix account: configure and enable it under [channels.matrix.accounts]"),
        "{why}"
    );
}
