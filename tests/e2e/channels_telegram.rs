//! The assistant on Telegram, against the fake Bot API of `gateway_tests::telegram` (no Telegram
//! server runs offline; the fake follows the documented wire format): long polling with the
//! offset kept across a restart, pairing, typing, replies cut to 4096 characters, a 429 waited
//! out, the webhook mode with its secret, and a probe with a wrong token.

use std::time::Duration;

use gateway_tests::http1::request;
use gateway_tests::telegram::{update, FakeTelegram, TOKEN};
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::*;
use serde_json::Value;

const ANSWER: Duration = Duration::from_secs(15);

fn account(api: &FakeTelegram, id: &str, extra: &str) -> String {
    format!(
        "[channels.telegram.accounts.{id}]\nbot_token = \"{TOKEN}\"\nbase_url = \"{}\"\n{extra}\n",
        api.base_url()
    )
}

fn telegram_account(home: &Home, id: &str, probe: bool) -> Value {
    let mut args = vec!["channels", "status", "--json"];
    if probe {
        args.push("--probe");
    }
    let report: Value = serde_json::from_slice(&home.ctl(&args).stdout).unwrap();
    report["channelAccounts"]["telegram"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["accountId"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no account {id} in {report}"))
}

#[test]
fn a_polling_bot_pairs_a_stranger_answers_and_keeps_its_offset_across_a_restart() {
    let api = FakeTelegram::start();
    let home = Home::new();
    let port = free_port();
    home.write_config(None, &account(&api, "main", ""));
    let d = home.start(&["--port", &port.to_string()]);
    wait_for(Duration::from_secs(10), "the bot to connect", || {
        (telegram_account(&home, "main", false)["connected"] == true).then_some(())
    });
    assert_eq!(telegram_account(&home, "main", false)["name"], "@gwbot");

    api.message(42, "alice", 42, "private", "hello bot");
    let sent = api.wait_sent(42, 1, ANSWER);
    let code = sent[0].split("pairing code is ").nth(1).expect("a code")[..8].to_owned();
    assert!(home.ctl(&["pairing", "approve", "telegram", &code]).status.success());
    api.message(42, "alice", 42, "private", "hi again");
    let sent = api.wait_sent(42, 2, ANSWER);
    assert_eq!(sent[1], "hi again", "the echo model answers");
    let typing = api.calls("sendChatAction");
    assert!(typing.iter().any(|b| b["chat_id"] == "42" && b["action"] == "typing"), "{typing:?}");
    let last = api.message(42, "alice", 42, "private", "third");
    assert_eq!(api.wait_sent(42, 3, ANSWER)[2], "third");

    // The offset moved past what was recorded, and a restart goes on from there. The last reply
    // is recorded as sent first: one sent in the instant before a kill is sent again.
    wait_for(Duration::from_secs(5), "the offset to move past the last update", || {
        api.offsets().iter().any(|o| *o > last).then_some(())
    });
    wait_for(Duration::from_secs(5), "the last reply recorded as sent", || {
        (telegram_account(&home, "main", false)["pendingReplies"] == 0).then_some(())
    });
    drop(d);
    let polls_before = api.offsets().len();
    let _d = home.start(&["--port", &port.to_string()]);
    wait_for(Duration::from_secs(10), "polling again", || (api.offsets().len() > polls_before).then_some(()));
    assert!(api.offsets()[polls_before..].iter().all(|o| *o > last), "{:?}", api.offsets());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(api.wait_sent(42, 4, Duration::from_millis(200)).len(), 3, "nothing answered twice");
}

#[test]
fn long_replies_are_cut_to_telegrams_limit_and_a_429_is_waited_out() {
    let api = FakeTelegram::start();
    let up = Upstream::start();
    let home = Home::new();
    let config = format!(
        "{}\n[agents.long]\nmodel = \"up/words-1500\"\n\n{}",
        upstream_provider(&up, &["words-1500"]),
        account(&api, "main", "dm_policy = \"open\"\nallow_from = [\"*\"]\nagent = \"long\"\n")
    );
    let _d = home.start_with(&config);
    wait_for(Duration::from_secs(10), "the bot to connect", || {
        (telegram_account(&home, "main", false)["connected"] == true).then_some(())
    });
    api.too_many_requests(1);
    api.message(7, "bob", 7, "private", "talk a lot");
    let words: Vec<String> = (1..=1500).map(|i| format!("w{i}")).collect();
    let complete = |sent: &[String]| sent.iter().flat_map(|m| m.split(' ')).count() >= words.len();
    let mut sent = api.wait_sent(7, 1, ANSWER);
    for n in 2..10 {
        if complete(&sent) {
            break;
        }
        sent = api.wait_sent(7, n, ANSWER);
    }
    assert!(sent.iter().all(|m| m.chars().count() <= 4096), "within the limit");
    let got: Vec<&str> = sent.iter().flat_map(|m| m.split(' ')).collect();
    assert_eq!(got, words, "cut on spaces, nothing lost, in order; gatewayd: {}", _d.stderr());
    let n = sent.len();
    assert!(n >= 2, "more than one message: {n}");
}

#[test]
fn a_webhook_bot_takes_updates_only_with_its_secret() {
    let api = FakeTelegram::start();
    let home = Home::new();
    let extra = "mode = \"webhook\"\nwebhook_url = \"https://bot.example.org/channels/telegram/hook\"\n\
                 webhook_secret = \"hook-secret-value\"\ndm_policy = \"open\"\nallow_from = [\"*\"]\n";
    let d = home.start_with(&account(&api, "hook", extra));
    wait_for(Duration::from_secs(10), "the webhook to be set", || {
        (!api.calls("setWebhook").is_empty()).then_some(())
    });
    let set = &api.calls("setWebhook")[0];
    assert_eq!(
        (set["url"].as_str(), set["secret_token"].as_str()),
        (Some("https://bot.example.org/channels/telegram/hook"), Some("hook-secret-value"))
    );
    assert!(api.calls("getUpdates").is_empty(), "a webhook bot does not poll");

    let body = update(500, 9, "carol", 9, "private", "via webhook").to_string();
    let post = |secret: Option<&str>, path: &str| {
        let mut headers = vec![];
        if let Some(s) = secret {
            headers.push(("X-Telegram-Bot-Api-Secret-Token", s));
        }
        request(d.port, "POST", path, &headers, Some(&body)).unwrap()
    };
    assert_eq!(post(None, "/channels/telegram/hook").status, 401);
    assert_eq!(post(Some("wrong"), "/channels/telegram/hook").status, 401);
    assert_eq!(post(Some("hook-secret-value"), "/channels/telegram/nobody").status, 404);
    let ok = post(Some("hook-secret-value"), "/channels/telegram/hook");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(api.wait_sent(9, 1, ANSWER), ["via webhook"]);
    // Telegram sends an update again when unsure: it is answered once.
    assert_eq!(post(Some("hook-secret-value"), "/channels/telegram/hook").status, 200);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(api.wait_sent(9, 2, Duration::from_millis(100)).len(), 1);
}

#[test]
fn a_wrong_token_fails_the_probe_and_says_so() {
    let api = FakeTelegram::start();
    let home = Home::new();
    let config = account(&api, "main", "").replace(TOKEN, "999:wrong-token");
    let _d = home.start_with(&config);
    let status = telegram_account(&home, "main", true);
    assert_eq!(status["probe"]["ok"], false, "{status}");
    assert_eq!(status["probe"]["error"], "the bot token was refused (401 Unauthorized)");
    let out = home.ctl(&["channels", "status", "--probe"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Telegram main: connecting") && text.contains("the bot token was refused"),
        "{text}"
    );
    assert!(!text.contains("wrong-token"), "the token is never shown");
}
