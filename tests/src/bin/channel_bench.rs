//! gateway-channel-bench: the assistant on IRC, measured against a real IRC server (Debian's
//! ngircd, as in the channel tests) beside the targets.
//!
//! Run from the workspace root:
//!   cargo build --release --workspace --bins && ./target/release/gateway-channel-bench [--json]
//!
//! Each run starts a fresh release `gatewayd` (zero config but the channel accounts, so the
//! built-in echo model answers) and:
//! - memory: its VmRSS with no account, then with one, then with `--accounts` IRC accounts (each
//!   step a hot reload, every account connected, joined and idle): the difference from none
//!   divided by the number of accounts, and what each account after the first adds;
//! - latency: a scripted IRC user sends a direct message to one of the accounts (allowlisted) and
//!   times it until the answer arrives; the floor is the same message to a bare echo bot on the
//!   same server (a raw IRC client in this process that answers every PRIVMSG at once), so the
//!   server's own relaying is measured beside us. Messages go one at a time, alternating between
//!   the two, each bot getting one per `--interval` so that neither one's flood control delays it.
//!
//! Figures are medians (with min and max) of the runs' medians.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use gateway_tests::benchutil::{arg_num, machine, proc_kib, quantile, to_json, to_table, Row, Stats, Target};
use gateway_tests::irc::{IrcServer, IrcUser, SERVER_PASSWORD};
use gateway_tests::{bin, free_port, Daemon, Home};
use serde_json::{json, Value};

const PEER: &str = "no peer figure (OpenClaw's IRC channel is not run here)";
const USER: &str = "bencher";
const FLOOR_BOT: &str = "floorbot";
const ANSWER: Duration = Duration::from_secs(10);

struct Opts {
    json: bool,
    runs: usize,
    accounts: usize,
    /// Messages per run to each of the gateway and the floor bot.
    messages: usize,
    /// Time between two messages to the same bot.
    interval: Duration,
}

const USAGE: &str =
    "usage: gateway-channel-bench [--json] [--runs N] [--accounts N] [--messages N] [--interval-ms N]";

fn parse_args() -> Result<Opts> {
    let mut o =
        Opts { json: false, runs: 3, accounts: 20, messages: 30, interval: Duration::from_millis(800) };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => o.json = true,
            "--runs" => o.runs = arg_num(&arg, args.next())?,
            "--accounts" => o.accounts = arg_num(&arg, args.next())?,
            "--messages" => o.messages = arg_num(&arg, args.next())?,
            "--interval-ms" => o.interval = Duration::from_millis(arg_num(&arg, args.next())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({USAGE})"),
        }
    }
    ensure!(o.runs > 0 && o.accounts > 0 && o.messages > 0, "counts must be positive");
    ensure!(o.accounts <= 40, "at most 40 accounts (the test server's connections per address)");
    Ok(o)
}

fn nick(i: usize) -> String {
    format!("gwbench{i}")
}

/// `n` accounts on the server; only the bench user may talk to them.
fn accounts_config(server: &IrcServer, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[channels.irc.accounts.a{i}]\nhost = \"127.0.0.1\"\nport = {}\ntls = false\nnick = \"{}\"\n\
                 password = \"{SERVER_PASSWORD}\"\nauth = \"server\"\nchannels = [\"#bench\"]\n\
                 dm_policy = \"allowlist\"\nallow_from = [\"{USER}\"]\n\n",
                server.port,
                nick(i)
            )
        })
        .collect()
}

fn rss_kib(daemon: &Daemon) -> Result<f64> {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).context("gatewayd is gone")?;
    proc_kib(&status, "VmRSS:")
}

/// How many accounts the daemon reports connected.
fn connected(home: &Home) -> Result<usize> {
    let out = home.ctl(&["channels", "status", "--json"]);
    ensure!(out.status.success(), "gatewayctl channels status: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let accounts = report["channelAccounts"]["irc"].as_array().cloned().unwrap_or_default();
    Ok(accounts.iter().filter(|a| a["connected"] == true).count())
}

/// A bare IRC echo bot on its own thread: the floor. Stops when the flag is set.
fn floor_bot(server: &IrcServer, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let mut bot = IrcUser::connect(server, FLOOR_BOT);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(line) = bot.try_expect(Duration::from_millis(200), |l| l.contains(" PRIVMSG ")) else {
                continue;
            };
            let from = line.trim_start_matches(':').split('!').next().unwrap_or_default().to_owned();
            if let Some((_, text)) = line.split_once(" :") {
                bot.say(&from, text);
            }
            bot.seen.clear();
        }
    })
}

/// Sends `text` to `to` and times it until `to` answers it.
fn round_trip(user: &mut IrcUser, to: &str, text: &str) -> Result<f64> {
    let started = Instant::now();
    user.say(to, text);
    let prefix = format!(":{to}!");
    let line = user
        .try_expect(ANSWER, |l| l.starts_with(&prefix) && l.contains(" PRIVMSG "))
        .with_context(|| format!("{to} did not answer within {ANSWER:?}"))?;
    let took = started.elapsed().as_secs_f64() * 1e3;
    ensure!(line.ends_with(&format!(" :{text}")), "{to} answered {line:?} to {text:?}");
    user.seen.clear();
    Ok(took)
}

struct RunResult {
    per_account_kib: f64,
    further_account_kib: f64,
    ours_p50: f64,
    ours_p99: f64,
    floor_p50: f64,
    floor_p99: f64,
}

fn one_run(o: &Opts, server: &IrcServer, run: usize) -> Result<RunResult> {
    let home = Home::new();
    home.write_config(None, "");
    let daemon = home.spawn(&["--port", &free_port().to_string()], gateway_tests::benchutil::die_with_parent);
    daemon.wait_ready();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(&daemon)?;

    let with = |n: usize| -> Result<f64> {
        home.write_config(None, &accounts_config(server, n));
        let reload = home.ctl(&["reload"]);
        ensure!(reload.status.success(), "gatewayctl reload: {}", String::from_utf8_lossy(&reload.stderr));
        let deadline = Instant::now() + Duration::from_secs(60);
        while connected(&home)? < n {
            ensure!(
                Instant::now() < deadline,
                "not every account connected within a minute: {}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
        rss_kib(&daemon)
    };
    let one = with(1)?;
    let all = with(o.accounts)?;
    let per_account_kib = (all - before) / o.accounts as f64;
    let further_account_kib = (all - one) / (o.accounts.max(2) - 1) as f64;

    let mut user = IrcUser::connect(server, USER);
    let (mut ours, mut floor) = (Vec::new(), Vec::new());
    let gap = o.interval / 2;
    // One warm-up message each, then the measured ones.
    for i in 0..=o.messages {
        let text = format!("bench message {run}.{i}");
        let a = round_trip(&mut user, &nick(0), &text).map_err(|e| e.context(daemon.stderr()))?;
        std::thread::sleep(gap.saturating_sub(Duration::from_secs_f64(a / 1e3)));
        let b = round_trip(&mut user, FLOOR_BOT, &text)?;
        std::thread::sleep(gap.saturating_sub(Duration::from_secs_f64(b / 1e3)));
        if i > 0 {
            ours.push(a);
            floor.push(b);
        }
    }
    user.send("QUIT");
    drop(daemon);
    Ok(RunResult {
        per_account_kib,
        further_account_kib,
        ours_p50: quantile(&mut ours, 0.5),
        ours_p99: quantile(&mut ours, 0.99),
        floor_p50: quantile(&mut floor, 0.5),
        floor_p99: quantile(&mut floor, 0.99),
    })
}

fn main() -> Result<()> {
    let o = parse_args()?;
    for name in ["gatewayd", "gatewayctl"] {
        let path = bin(name);
        ensure!(path.exists(), "{} is not built", path.display());
    }
    ensure!(
        gateway_tests::irc::ngircd().exists(),
        "ngircd is missing: install Debian's ngircd (`sudo apt-get install ngircd`)"
    );
    let m = machine();
    let log = |msg: &str| {
        if !o.json {
            eprintln!("{msg}");
        }
    };
    let server = IrcServer::start();
    let stop = Arc::new(AtomicBool::new(false));
    let bot = floor_bot(&server, stop.clone());
    let mut results = Vec::new();
    for run in 1..=o.runs {
        let r = one_run(&o, &server, run)?;
        log(&format!(
            "run {run}: {:.0} KiB per account ({:.0} KiB each after the first); reply p50/p99 {:.2}/{:.2} ms, floor {:.2}/{:.2} ms",
            r.per_account_kib, r.further_account_kib, r.ours_p50, r.ours_p99, r.floor_p50, r.floor_p99
        ));
        results.push(r);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = bot.join();

    let of = |f: fn(&RunResult) -> f64| Stats::of(results.iter().map(f).collect());
    let floor_what = "a bare echo bot on the same server".to_string();
    let rows = vec![
        Row {
            id: "irc_reply_p50",
            metric: "IRC direct message -> reply received (echo model), p50".into(),
            unit: "ms",
            prec: 2,
            ours: of(|r| r.ours_p50),
            target: Some(Target::AtMost(20.0)),
            peer: "-",
            floor: Some((of(|r| r.floor_p50), floor_what.clone())),
        },
        Row {
            id: "irc_reply_p99",
            metric: "IRC direct message -> reply received, p99".into(),
            unit: "ms",
            prec: 2,
            ours: of(|r| r.ours_p99),
            target: None,
            peer: "-",
            floor: Some((of(|r| r.floor_p99), floor_what)),
        },
        Row {
            id: "irc_account_rss",
            metric: format!("RSS added per connected IRC account ({} accounts, idle)", o.accounts),
            unit: "KiB",
            prec: 0,
            ours: of(|r| r.per_account_kib),
            target: Some(Target::AtMost(256.0)),
            peer: "-",
            floor: None,
        },
        Row {
            id: "irc_further_account_rss",
            metric: "RSS added by each account after the first (diagnostic)".into(),
            unit: "KiB",
            prec: 0,
            ours: of(|r| r.further_account_kib),
            target: None,
            peer: "-",
            floor: None,
        },
    ];
    let notes = vec![format!(
        "{} runs, each a fresh gatewayd; {} measured messages per run and side after one warm-up, one \
         message per {} ms to each bot; server: ngircd on loopback; RSS read 2 s after the last \
         account connected",
        o.runs,
        o.messages,
        o.interval.as_millis()
    )];
    if o.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&m, PEER, &rows, &notes, json!(null)))?);
    } else {
        print!("{}", to_table(&m, PEER, &rows, &notes));
    }
    Ok(())
}
