//! `config path|show|validate|schema`: the config file, and the config in effect.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gateway_config::{check_startable, classify, load_file, Overrides};
use gateway_proto::api::{ConfigIssue, ConfigView};
use gateway_proto::{exit, Profile};
use serde_json::Value;

use super::Ctx;
use crate::output::print_json;

pub fn path(ctx: &Ctx) -> Result<i32> {
    // Alone on its line, for `$(gatewayctl config path)`.
    println!("{}", ctx.paths()?.config_file.display());
    Ok(exit::OK)
}

pub fn show(ctx: &Ctx, json: bool) -> Result<i32> {
    let client = ctx.client()?;
    let (view, header) = match client.config() {
        Ok(view) => {
            // ConfigView has no pid; status does. Leave it out rather than fail on a race.
            let pid = client.status().map_or(String::new(), |s| format!(" (pid {})", s.pid));
            let header =
                format!("# in effect in gatewayd{pid}, generation {}, from {}", view.generation, view.path);
            (view, header)
        }
        Err(e) if e.is_not_running() => {
            let path = ctx.paths()?.config_file;
            let loaded = match load_file(&path) {
                Ok(loaded) => loaded,
                Err(issues) => {
                    eprintln!("gatewayd is not running, and its config file does not load:");
                    return Ok(report_issues(&issues));
                }
            };
            let header = if loaded.exists {
                format!("# gatewayd is not running; this is {} merged with the defaults", path.display())
            } else {
                format!("# no config file at {}: these are the defaults", path.display())
            };
            // Generation 0: no daemon has this config in effect.
            let view = ConfigView {
                path: path.display().to_string(),
                generation: 0,
                config: classify::redacted(&loaded.config),
            };
            (view, header)
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&view)?;
    } else {
        print!("{}", to_toml(&header, view.config)?);
    }
    Ok(exit::OK)
}

/// The config as TOML under a comment header. TOML has no null: unset keys are named in the
/// header instead.
fn to_toml(header: &str, mut config: Value) -> Result<String> {
    let mut unset = Vec::new();
    drop_nulls(&mut config, "", &mut unset);
    let body = toml::to_string_pretty(&config).context("cannot show the config as TOML")?;
    let mut text = format!("{header}\n");
    if !unset.is_empty() {
        text.push_str(&format!("# not set (their defaults apply): {}\n", unset.join(", ")));
    }
    text.push('\n');
    text.push_str(&body);
    Ok(text)
}

fn drop_nulls(value: &mut Value, prefix: &str, unset: &mut Vec<String>) {
    if let Value::Object(map) = value {
        map.retain(|key, v| {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            if v.is_null() {
                unset.push(path);
                false
            } else {
                drop_nulls(v, &path, unset);
                true
            }
        });
    }
}

pub fn validate(ctx: &Ctx, file: Option<PathBuf>) -> Result<i32> {
    let path = match file {
        Some(f) => f,
        None => ctx.paths()?.config_file,
    };
    match check(&ctx.profile, &path) {
        Err(issues) => Ok(report_issues(&issues)),
        Ok(true) => {
            println!("{}: ok", path.display());
            Ok(exit::OK)
        }
        Ok(false) => {
            println!("{}: not present (defaults apply)", path.display());
            Ok(exit::OK)
        }
    }
}

/// The checks gatewayd makes before it starts (a file can parse and still be refused): Ok with
/// whether the file exists, or every issue, located.
pub fn check(profile: &Profile, path: &Path) -> Result<bool, Vec<ConfigIssue>> {
    let loaded = load_file(path)?;
    let gateway = &loaded.config.gateway;
    let port = gateway.port.map_or(profile.default_port(), |p| p.port());
    let addr = SocketAddr::new(gateway.bind.ip(), port);
    check_startable(&loaded.config, &loaded, path, &Overrides::default(), addr)?;
    gateway_config::channels::check(&loaded.config.channels, &loaded.config.agents)
        .map_err(|(key, message)| vec![loaded.issue_at(path, &key, message)])?;
    Ok(loaded.exists)
}

pub fn report_issues(issues: &[ConfigIssue]) -> i32 {
    for issue in issues {
        eprintln!("{issue}");
    }
    exit::CONFIG
}

pub fn schema() -> Result<i32> {
    println!("{}", serde_json::to_string_pretty(&gateway_config::json_schema())?);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn config_as_toml_names_unset_keys() {
        let config = classify::redacted(&gateway_config::Config::default());
        let text = to_toml("# head", config).unwrap();
        assert!(
            text.starts_with(
                "# head\n# not set (their defaults apply): gateway.auth.password, gateway.auth.token, gateway.port, hooks.token, metrics.listen, metrics.token, observability.events_jsonl_path, observability.otel_jsonl_path, observability.otlp_endpoint\n\n"
            ),
            "{text}"
        );
        assert!(text.contains("[gateway.reload]\n"), "{text}");
        assert!(text.contains("level = \"info\""), "{text}");
        // What is printed parses back into the same config.
        let body = text.split_once("\n\n").unwrap().1;
        assert_eq!(
            gateway_config::parse_str(body, Path::new("x")).unwrap(),
            gateway_config::Config::default()
        );
    }
}
