//! `signins list|revoke`: the sign-in sessions: the Control UI's browsers (`browser`) and the
//! tokens handed out for the password in password mode (`bearer`). Not conversations: those are
//! `/gateway/sessions` on the main port.

use anyhow::Result;
use gateway_proto::exit;

use super::Ctx;
use crate::output::{ago, now_ms, print_json};

pub fn list(ctx: &Ctx, json: bool) -> Result<i32> {
    let report = ctx.client()?.signins()?;
    if json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    if report.sessions.is_empty() {
        println!(
            "no sign-in sessions (a browser signs in with `gatewayctl dashboard`; in password mode, \
             POST /gateway/auth/session hands out tokens)"
        );
    }
    let now = now_ms();
    for s in &report.sessions {
        let left = s.expires_at_ms.saturating_sub(now) / 60_000;
        println!(
            "{}  {:<7}  created {}  expires in {left} min  {}",
            s.id,
            s.kind,
            ago(s.created_at_ms, now),
            s.client
        );
    }
    Ok(exit::OK)
}

pub fn revoke(ctx: &Ctx, id: &str) -> Result<i32> {
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(
            "invalid sign-in session id {id:?}: give the 8 hex characters shown by `gatewayctl signins list`"
        );
    }
    let report = ctx.client()?.revoke_signin(id)?;
    println!("sign-in session {id} ended; {} connection(s) closed", report.closed_connections);
    Ok(exit::OK)
}
