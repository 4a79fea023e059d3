//! `token show|rotate`: the gateway token, from the daemon or from its file in the state dir.

use anyhow::{bail, Context, Result};
use gateway_config::secret::{generate_token, read_secret_file, write_secret_file};
use gateway_proto::api::TokenInfo;
use gateway_proto::exit;
use gateway_proto::paths::{env_var, non_empty_env};

use super::Ctx;
use crate::output::print_json;

pub fn show(ctx: &Ctx, json: bool) -> Result<i32> {
    let info = match ctx.client()?.token() {
        Ok(info) => info,
        Err(e) if e.is_not_running() => {
            let file = ctx.paths()?.token_file();
            let token = read_secret_file(&file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?;
            let Some(token) = token else {
                bail!(
                    "no token yet: gatewayd generates one on first start ({} does not exist). \
                     Start gatewayd, or create one now with `gatewayctl token rotate`",
                    file.display()
                );
            };
            warn_if_overridden(ctx);
            from_file(&file, token)
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&info)?;
    } else {
        // The token alone, for `$(gatewayctl token show)`.
        println!("{}", info.token);
    }
    Ok(exit::OK)
}

pub fn rotate(ctx: &Ctx, json: bool) -> Result<i32> {
    let client = ctx.client()?;
    // A 409 (the token comes from env or config) surfaces as "gatewayd refused ...", exit 1.
    let info = match client.rotate_token() {
        Ok(info) => {
            if !json {
                println!("token rotated; clients must use the new token (gatewayctl token show)");
            }
            info
        }
        Err(e) if e.is_not_running() => {
            let paths = ctx.private_state_dir()?;
            let file = paths.token_file();
            let token = generate_token();
            write_secret_file(&file, &token)
                .with_context(|| format!("cannot write the token file {}", file.display()))?;
            if !json {
                println!(
                    "token rotated in {}; gatewayd is not running and uses it from its next start \
                     (gatewayctl token show)",
                    file.display()
                );
            }
            warn_if_overridden(ctx);
            from_file(&file, token)
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&info)?;
    }
    Ok(exit::OK)
}

/// The token as kept in the state dir's file.
fn from_file(file: &std::path::Path, token: String) -> TokenInfo {
    TokenInfo { token, source: "file".to_owned(), file: Some(file.display().to_string()) }
}

/// Without a daemon to ask, say when the file is not the token gatewayd would use: like the
/// daemon, `GATEWAY_TOKEN` and `gateway.auth.token` win over the file.
fn warn_if_overridden(ctx: &Ctx) {
    let source = if non_empty_env(env_var::TOKEN).is_some() {
        Some(format!("{} in the environment", env_var::TOKEN))
    } else {
        ctx.paths().ok().and_then(|paths| {
            let loaded = gateway_config::load_file(&paths.config_file).ok()?;
            loaded.config.gateway.auth.token.map(|t| {
                format!("gateway.auth.token = {:?} in {}", t.redacted(), paths.config_file.display())
            })
        })
    };
    if let Some(source) = source {
        eprintln!("note: {source} takes precedence over this file when gatewayd starts");
    }
}
