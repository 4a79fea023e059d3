//! The assistant on Matrix, against a real Synapse homeserver (`gateway_tests::matrix`): a
//! stranger's direct-message invite accepted, the pairing code, approval, answers; and a
//! restart of the gateway in the middle of a conversation that loses nothing and answers
//! nothing twice.

use std::time::Duration;

use gateway_tests::matrix::{MatrixUser, Synapse};
use gateway_tests::*;
use serde_json::Value;

const ANSWER: Duration = Duration::from_secs(30);

fn account(server: &Synapse, bot: &str) -> String {
    format!(
        "[channels.matrix.accounts.main]\nhomeserver = \"{}\"\nuser_id = \"{bot}\"\npassword = \"bot-password\"\n",
        server.url()
    )
}

fn matrix_account(home: &Home, probe: bool) -> Value {
    let mut args = vec!["channels", "status", "--json"];
    if probe {
        args.push("--probe");
    }
    let report: Value = serde_json::from_slice(&home.ctl(&args).stdout).unwrap();
    report["channelAccounts"]["matrix"][0].clone()
}

#[test]
fn a_stranger_invites_the_bot_pairs_and_gets_answers_across_a_gateway_restart() {
    let server = Synapse::start();
    let bot = server.register("bot", "bot-password");
    let alice_id = server.register("alice", "alice-password");
    let home = Home::new();
    let port = free_port();
    home.write_config(None, &account(&server, &bot));
    let d = home.start(&["--port", &port.to_string()]);
    wait_for(Duration::from_secs(30), "the bot to sync", || {
        (matrix_account(&home, false)["connected"] == true).then_some(())
    });
    assert_eq!(matrix_account(&home, true)["probe"]["ok"], true);

    let alice = MatrixUser::login(&server, &alice_id, "alice-password");
    let room = alice.direct_room(&bot);
    alice.wait_joined(&room, &bot, ANSWER);
    alice.say(&room, "hello bot");
    let said = alice.wait_messages(&room, &bot, 1, ANSWER);
    let code = said[0].split("pairing code is ").nth(1).expect("a pairing code")[..8].to_owned();
    let approved = home.ctl(&["pairing", "approve", "matrix", &code]);
    assert!(approved.status.success(), "{approved:?}");
    alice.say(&room, "first question");
    assert_eq!(alice.wait_messages(&room, &bot, 2, ANSWER)[1], "first question");

    // The gateway goes away mid-conversation; what alice says meanwhile is answered once after.
    drop(d);
    alice.say(&room, "while you were away");
    let _d = home.start(&["--port", &port.to_string()]);
    let after = alice.wait_messages(&room, &bot, 3, ANSWER);
    assert_eq!(after[2], "while you were away");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        alice.messages_from(&room, &bot).len(),
        3,
        "nothing answered twice: {:?}",
        alice.messages_from(&room, &bot)
    );
}

#[test]
fn a_wrong_password_fails_the_probe() {
    let server = Synapse::start();
    let bot = server.register("bot", "bot-password");
    let home = Home::new();
    let _d = home.start_with(&account(&server, &bot).replace("bot-password", "wrong-password"));
    let status = matrix_account(&home, true);
    assert_eq!(status["probe"]["ok"], false, "{status}");
    assert!(status["probe"]["error"].as_str().unwrap().contains("M_FORBIDDEN"), "{status}");
}
