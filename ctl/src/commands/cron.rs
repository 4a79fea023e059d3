//! `cron status|list|show|add|edit|rm|run|runs|enable|disable`: scheduled jobs, through the
//! running daemon (jobs live in its state database).

use std::time::Duration;

use anyhow::{bail, Result};
use gateway_proto::cron::{
    parse_duration, Delivery, Job, JobPatch, JobSpec, Missed, Payload, Retention, RunRecord, Schedule,
    SessionTarget,
};
use gateway_proto::exit;

use super::Ctx;
use crate::output::{ago, duration, plural, print_json};
use gatewayctl::cli::{CronCommand, JobArgs};

pub fn run(ctx: &Ctx, command: CronCommand) -> Result<i32> {
    let client = ctx.client()?;
    match command {
        CronCommand::Status(j) => {
            let s = client.cron_status()?;
            if j.json {
                print_json(&s)?;
            } else {
                let now = gateway_proto::time::now_ms();
                println!(
                    "scheduler: {}; {} ({} enabled), {} running; next run {}",
                    if s.enabled { "on" } else { "off (cron.enabled = false)" },
                    plural(s.jobs, "job"),
                    s.enabled_jobs,
                    s.running,
                    s.next_run_at_ms.map_or("none".to_owned(), |t| when(t, now))
                );
                print!("{}", events_text(&s.events));
            }
            Ok(exit::OK)
        }
        CronCommand::List(j) => {
            let jobs = client.cron_jobs()?;
            if j.json {
                print_json(&jobs)?;
            } else if jobs.is_empty() {
                println!(
                    "no scheduled jobs: add one with `gatewayctl cron add --every 1h --message \"...\"`"
                );
            } else {
                let now = gateway_proto::time::now_ms();
                for job in &jobs {
                    print_job_line(job, now);
                }
            }
            Ok(exit::OK)
        }
        CronCommand::Show { job, json } => {
            let job = client.cron_job(&job)?;
            if json.json {
                print_json(&job)?;
            } else {
                print_job(&job);
            }
            Ok(exit::OK)
        }
        CronCommand::Add { job, disabled, json } => {
            let spec = spec_of(*job, !disabled)?;
            let job = client.cron_add(&spec)?;
            if json.json {
                print_json(&job)?;
            } else {
                println!("added job {} ({})", job.spec.name, job.id);
                print_job(&job);
            }
            Ok(exit::OK)
        }
        CronCommand::Edit { job, args, json } => {
            let patch = patch_of(*args)?;
            if patch == JobPatch::default() {
                bail!("nothing to change: give --every, --message, --deliver, ... (see `gatewayctl cron edit --help`)");
            }
            let job = client.cron_edit(&job, &patch)?;
            if json.json {
                print_json(&job)?;
            } else {
                println!("changed job {} ({})", job.spec.name, job.id);
                print_job(&job);
            }
            Ok(exit::OK)
        }
        CronCommand::Rm { job } => {
            let job = client.cron_remove(&job)?;
            println!("removed job {} ({}) and its history", job.spec.name, job.id);
            Ok(exit::OK)
        }
        CronCommand::Enable { job } => toggle(ctx, &job, true),
        CronCommand::Disable { job } => toggle(ctx, &job, false),
        CronCommand::Run { job, no_wait, timeout, json } => {
            let wait = if no_wait {
                None
            } else {
                Some(Duration::from_millis(parse_duration(&timeout).map_err(anyhow::Error::msg)?))
            };
            let run = client.cron_run(&job, wait)?;
            if json.json {
                print_json(&run)?;
            } else {
                print_run(&run, gateway_proto::time::now_ms());
            }
            Ok(match run.status.as_str() {
                "ok" | "running" => exit::OK,
                _ => exit::FAILURE,
            })
        }
        CronCommand::Runs { job, limit, json } => {
            let runs = client.cron_runs(job.as_deref(), limit)?;
            if json.json {
                print_json(&runs)?;
            } else if runs.is_empty() {
                println!("no runs yet");
            } else {
                let now = gateway_proto::time::now_ms();
                for run in &runs {
                    print_run(run, now);
                }
            }
            Ok(exit::OK)
        }
    }
}

fn toggle(ctx: &Ctx, job: &str, enabled: bool) -> Result<i32> {
    let patch = JobPatch { enabled: Some(enabled), ..Default::default() };
    let job = ctx.client()?.cron_edit(job, &patch)?;
    let next = job.state.next_run_at_ms.map_or("none".to_owned(), |t| when(t, gateway_proto::time::now_ms()));
    println!("job {} {}; next run {next}", job.spec.name, if enabled { "enabled" } else { "disabled" });
    Ok(exit::OK)
}

fn schedule_of(args: &JobArgs) -> Result<Option<Schedule>> {
    Ok(match (&args.at, &args.every, &args.cron) {
        (Some(at), _, _) => Some(Schedule::At { at: at.clone() }),
        (_, Some(every), _) => Some(Schedule::Every {
            every_ms: parse_duration(every).map_err(anyhow::Error::msg)?,
            anchor_ms: None,
        }),
        (_, _, Some(expr)) => Some(Schedule::Cron { expr: expr.clone(), tz: args.tz.clone() }),
        _ => None,
    })
}

fn target_of(args: &JobArgs) -> Option<(SessionTarget, Option<String>)> {
    match (&args.session, args.isolated, args.main) {
        (Some(key), _, _) => Some((SessionTarget::Session, Some(key.clone()))),
        (_, true, _) => Some((SessionTarget::Isolated, None)),
        (_, _, true) => Some((SessionTarget::Main, None)),
        _ => None,
    }
}

fn missed_of(text: Option<&str>) -> Option<Missed> {
    text.map(|m| if m == "skip" { Missed::Skip } else { Missed::RunOnce })
}

fn spec_of(args: JobArgs, enabled: bool) -> Result<JobSpec> {
    let Some(schedule) = schedule_of(&args)? else {
        bail!("when should it run? give one of --at (+20m, or an RFC 3339 time), --every (5m) or --cron (\"0 7 * * *\")");
    };
    let Some(message) = args.message.clone() else {
        bail!("what should the agent do? give --message \"...\"");
    };
    let (session_target, session_key) = target_of(&args).unwrap_or((SessionTarget::Isolated, None));
    let defaults = Retention::default();
    Ok(JobSpec {
        name: args.name.clone().unwrap_or_default(),
        description: None,
        schedule,
        session_target,
        session_key,
        agent_id: args.agent.clone(),
        payload: Payload {
            kind: "agentTurn".into(),
            message,
            model: args.model.clone(),
            timeout_seconds: None,
        },
        delivery: Delivery::parse(args.deliver.as_deref().unwrap_or("none")).map_err(anyhow::Error::msg)?,
        missed: missed_of(args.missed.as_deref()).unwrap_or_default(),
        retention: Retention {
            keep_runs: args.keep_runs.unwrap_or(defaults.keep_runs),
            keep_days: args.keep_days.unwrap_or(defaults.keep_days),
        },
        enabled,
    })
}

fn patch_of(args: JobArgs) -> Result<JobPatch> {
    let target = target_of(&args);
    let retention = match (args.keep_runs, args.keep_days) {
        (None, None) => None,
        (runs, days) => {
            let d = Retention::default();
            Some(Retention { keep_runs: runs.unwrap_or(d.keep_runs), keep_days: days.unwrap_or(d.keep_days) })
        }
    };
    Ok(JobPatch {
        name: args.name.clone(),
        schedule: schedule_of(&args)?,
        session_target: target.as_ref().map(|t| t.0),
        session_key: target.and_then(|t| t.1),
        agent_id: args.agent.clone(),
        message: args.message.clone(),
        model: args.model.clone(),
        delivery: args.deliver.as_deref().map(Delivery::parse).transpose().map_err(anyhow::Error::msg)?,
        missed: missed_of(args.missed.as_deref()),
        retention,
        ..Default::default()
    })
}

/// "in 5m (2026-12-05T10:00:00Z)" or "5m ago (...)".
fn when(t: u64, now: u64) -> String {
    let at = gateway_proto::time::rfc3339_millis(t);
    if t > now {
        format!("in {} ({at})", duration(t - now))
    } else {
        format!("{} ({at})", ago(t, now))
    }
}

fn describe(schedule: &Schedule) -> String {
    match schedule {
        Schedule::At { at } => format!("at {at}"),
        Schedule::Every { every_ms, .. } => format!("every {}", duration(*every_ms)),
        Schedule::Cron { expr, tz } => format!("cron \"{expr}\" {}", tz.as_deref().unwrap_or("UTC")),
    }
}

fn print_job_line(job: &Job, now: u64) {
    let next = if !job.spec.enabled {
        "disabled".to_owned()
    } else if job.state.running_since_ms.is_some() {
        "running".to_owned()
    } else {
        job.state.next_run_at_ms.map_or("no next run".to_owned(), |t| format!("next {}", when(t, now)))
    };
    let last = job.state.last_status.as_deref().map_or(String::new(), |s| {
        format!("; last {s} ({})", job.state.last_reason_code.as_deref().unwrap_or("-"))
    });
    let source = if job.source == "config" { " [config]" } else { "" };
    println!("{}  {}{source}  {}  {next}{last}", job.id, job.spec.name, describe(&job.spec.schedule));
}

fn print_job(job: &Job) {
    let now = gateway_proto::time::now_ms();
    let s = &job.spec;
    println!("  id:        {}", job.id);
    println!(
        "  name:      {}{}",
        s.name,
        if job.source == "config" { " (from the config file)" } else { "" }
    );
    println!("  schedule:  {}", describe(&s.schedule));
    println!("  enabled:   {}", s.enabled);
    let target = match s.session_target {
        SessionTarget::Isolated => "a fresh session per run".to_owned(),
        SessionTarget::Main => "the main session".to_owned(),
        SessionTarget::Session => format!("session {}", s.session_key.as_deref().unwrap_or("?")),
    };
    println!(
        "  runs in:   {target}{}",
        s.agent_id.as_deref().map(|a| format!(", agent {a}")).unwrap_or_default()
    );
    println!("  message:   {}", s.payload.message);
    println!("  delivery:  {}", s.delivery.describe());
    println!("  missed:    {}", if s.missed == Missed::Skip { "skip" } else { "run_once" });
    println!("  history:   {} runs, {} days", s.retention.keep_runs, s.retention.keep_days);
    println!("  next run:  {}", job.state.next_run_at_ms.map_or("none".to_owned(), |t| when(t, now)));
    if let Some(t) = job.state.last_run_at_ms {
        println!(
            "  last run:  {}: {} ({})",
            when(t, now),
            job.state.last_status.as_deref().unwrap_or("running"),
            job.state.last_reason_code.as_deref().unwrap_or("-")
        );
    }
    if job.state.consecutive_errors > 0 {
        println!("  failures in a row: {}", job.state.consecutive_errors);
    }
}

fn print_run(run: &RunRecord, now: u64) {
    let took = match (run.started_at_ms, run.finished_at_ms) {
        (Some(a), Some(b)) => format!(" in {}", duration(b.saturating_sub(a))),
        _ => String::new(),
    };
    println!(
        "{}  {}  {} {}{took}  {} ({}), {}",
        run.run_id,
        run.job_name,
        run.trigger,
        when(run.scheduled_at_ms, now),
        run.status,
        run.reason_code,
        match run.delivery.as_str() {
            "none" => "not delivered".to_owned(),
            "delivered" => "delivered".to_owned(),
            _ => format!("delivery failed: {}", run.delivery_error.as_deref().unwrap_or("?")),
        }
    );
    if let Some(e) = &run.error {
        println!("    error: {e}");
    }
    if let Some(s) = &run.summary {
        println!("    answer: {}", s.replace('\n', " "));
    }
}

/// The events block, for people (`cron status`, `status --deep`).
pub fn events_text(e: &gateway_proto::cron::EventsInfo) -> String {
    let mut o = format!("rollout gate: {} ({}): {}\n", e.rollout_gate, e.reason_code, e.health_reason);
    o += &format!(
        "  jobs: {} known, {} enabled, {} malformed; {} due, {} running, {} waiting\n",
        e.discovered_events,
        e.enabled_events,
        e.malformed_events,
        e.due_now_events,
        e.queued_now_events,
        e.not_due_events
    );
    o += &format!(
        "  history: {}: {} ok, {} failed, {} skipped{}\n",
        plural(e.execution_history_entries, "run"),
        e.executed_history_entries,
        e.failed_history_entries,
        e.skipped_history_entries,
        e.last_execution_reason_code.as_deref().map(|r| format!("; last: {r}")).unwrap_or_default()
    );
    for d in &e.diagnostics {
        o += &format!("  - {d}\n");
    }
    o
}
