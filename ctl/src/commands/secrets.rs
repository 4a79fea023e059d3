//! `secrets reload|audit`: re-read secret references now, and say where each secret comes from.

use anyhow::Result;
use gateway_proto::api::ReloadOutcome;
use gateway_proto::exit;

use super::lifecycle::show_reload;
use super::Ctx;
use crate::output::print_json;

pub fn reload(ctx: &Ctx, json: bool) -> Result<i32> {
    let report = ctx.client()?.reload_secrets()?;
    show_reload(&report, json, "gatewayctl secrets reload")?;
    Ok(if report.outcome == ReloadOutcome::Rejected { exit::CONFIG } else { exit::OK })
}

pub fn audit(ctx: &Ctx, json: bool) -> Result<i32> {
    let audit = ctx.client()?.secrets_audit()?;
    if json {
        print_json(&audit)?;
    } else {
        let mode = audit.config_mode.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
        println!("config: {}{mode}", audit.config_file);
        for s in &audit.secrets {
            let from = match (&s.reference, &s.file) {
                (Some(r), _) => format!("{} {r}", s.source),
                (None, Some(f)) => format!("{} {f}", s.source),
                (None, None) => s.source.clone(),
            };
            let file_mode = s.file_mode.as_deref().map(|m| format!(", mode {m}")).unwrap_or_default();
            let state = if s.resolves { "resolves" } else { "DOES NOT RESOLVE" };
            println!(
                "{:<8} {}: {from}{file_mode}, {state}",
                if s.problem.is_some() { "PROBLEM" } else { "ok" },
                s.key
            );
            if let Some(problem) = &s.problem {
                println!("         {problem}");
            }
        }
        if audit.secrets.is_empty() {
            println!("no secrets in use (auth mode none, nothing else configured)");
        }
    }
    Ok(if audit.problems == 0 { exit::OK } else { exit::FAILURE })
}
