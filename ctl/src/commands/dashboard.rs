//! `dashboard`: a link that signs a browser in to the Control UI. The daemon issues a one-time
//! code (two minutes, single use) that rides in the link's fragment, which browsers never send
//! to a server or write to a log; the page trades it for an HttpOnly cookie and drops it from
//! the address bar.

use std::process::{Command, Stdio};

use anyhow::Result;
use gateway_proto::exit;
use serde_json::json;

use super::Ctx;
use crate::output::print_json;

pub fn dashboard(ctx: &Ctx, no_open: bool, json: bool) -> Result<i32> {
    let link = ctx.client()?.ui_link()?;
    let opened = !no_open && open_in_browser(&link.url);
    if json {
        print_json(&json!({
            "url": link.url,
            "ui_url": link.ui_url,
            "expires_at_ms": link.expires_at_ms,
            "opened": opened,
        }))?;
        return Ok(exit::OK);
    }
    println!("{}", link.url);
    if opened {
        eprintln!("opened in your browser; the link signs in once, within 2 minutes");
    } else {
        eprintln!(
            "open this link in a browser on this machine: it signs in once, within 2 minutes \
             (then the UI is at {})",
            link.ui_url
        );
    }
    Ok(exit::OK)
}

/// Starts the desktop's opener, when there is a desktop; true when it started.
fn open_in_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        "xdg-open"
    } else {
        return false;
    };
    Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
