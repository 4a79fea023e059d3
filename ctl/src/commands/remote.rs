//! `remote inspect|plan`: is this gateway's config fit for a remote-access profile, and how to
//! get there. Read from the config file (gatewayd need not run). The gateway never runs
//! `tailscale` or `ssh` itself: `plan` prints the commands for the operator to run.

use anyhow::{Context, Result};
use gateway_config::{AuthMode, Config, RemoteProfile};
use gateway_proto::exit;
use serde::Serialize;

use super::Ctx;
use crate::output::print_json;

#[derive(Debug, Serialize)]
pub struct AuthFacts {
    pub mode: String,
    pub password_set: bool,
    pub trusted_proxies: Vec<String>,
}

/// What `remote inspect` reports.
#[derive(Debug, Serialize)]
pub struct Posture {
    pub profile: String,
    /// loopback-only, lan-exposed, tailnet, public-internet or behind-proxy.
    pub posture: String,
    /// pass, or hold when a hard rule of the profile is broken.
    pub gate: String,
    /// low, medium or high: how far the profile opens the gateway.
    pub risk_level: String,
    pub bind: String,
    pub bind_is_loopback: bool,
    pub port: u16,
    pub auth: AuthFacts,
    pub reason_codes: Vec<String>,
    pub recommendations: Vec<String>,
}

/// The facts the rules read, apart from the config itself.
pub struct Facts {
    pub port: u16,
    pub password_set: bool,
}

/// The profile's hard rules against the config: (reason code, what to do) per broken rule.
fn broken_rules(profile: RemoteProfile, config: &Config, facts: &Facts) -> Vec<(&'static str, String)> {
    let auth = config.gateway.auth.mode;
    let loopback = config.gateway.bind.is_loopback();
    let mut broken = Vec::new();
    let mut need = |ok: bool, code: &'static str, fix: &str| {
        if !ok {
            broken.push((code, fix.to_owned()));
        }
    };
    if profile != RemoteProfile::LocalOnly {
        need(
            auth != AuthMode::None,
            "auth_none_never_remote",
            "set gateway.auth.mode (token or password): auth none is never remote",
        );
    }
    match profile {
        RemoteProfile::LocalOnly => {
            need(loopback, "non_loopback_bind", "set gateway.bind = \"loopback\", or pick a remote profile");
        }
        RemoteProfile::PasswordRemote => {
            need(
                auth == AuthMode::Password,
                "password_auth_required",
                "set gateway.auth.mode = \"password\"",
            );
            need(facts.password_set, "password_not_set", "set a password: gatewayctl password set");
        }
        RemoteProfile::ProxyRemote => {
            need(
                matches!(auth, AuthMode::Token | AuthMode::TrustedProxy),
                "token_or_trusted_proxy_auth_required",
                "set gateway.auth.mode = \"token\" or \"trusted-proxy\"",
            );
            need(
                !config.gateway.http.trusted_proxies.is_empty(),
                "trusted_proxies_missing",
                "list the proxy's address in gateway.http.trusted_proxies",
            );
        }
        RemoteProfile::TailscaleServe => {
            need(
                loopback,
                "loopback_bind_required",
                "set gateway.bind = \"loopback\": Tailscale Serve forwards to 127.0.0.1",
            );
            need(
                matches!(auth, AuthMode::Token | AuthMode::Password),
                "token_or_password_auth_required",
                "set gateway.auth.mode = \"token\" or \"password\"",
            );
        }
        RemoteProfile::TailscaleFunnel => {
            need(
                loopback,
                "loopback_bind_required",
                "set gateway.bind = \"loopback\": Tailscale Funnel forwards to 127.0.0.1",
            );
            need(
                auth == AuthMode::Password,
                "password_auth_required",
                "set gateway.auth.mode = \"password\": Funnel is the public internet",
            );
            need(facts.password_set, "password_not_set", "set a password: gatewayctl password set");
        }
    }
    broken
}

pub fn inspect(profile: RemoteProfile, config: &Config, facts: &Facts) -> Posture {
    let broken = broken_rules(profile, config, facts);
    let loopback = config.gateway.bind.is_loopback();
    let posture = match profile {
        _ if !loopback && profile != RemoteProfile::PasswordRemote => "lan-exposed",
        RemoteProfile::LocalOnly => "loopback-only",
        RemoteProfile::PasswordRemote => {
            if loopback {
                "loopback-only"
            } else {
                "lan-exposed"
            }
        }
        RemoteProfile::ProxyRemote => "behind-proxy",
        RemoteProfile::TailscaleServe => "tailnet",
        RemoteProfile::TailscaleFunnel => "public-internet",
    };
    let risk = match profile {
        RemoteProfile::LocalOnly if loopback => "low",
        RemoteProfile::TailscaleServe | RemoteProfile::ProxyRemote => "medium",
        RemoteProfile::LocalOnly => "high",
        RemoteProfile::PasswordRemote | RemoteProfile::TailscaleFunnel => "high",
    };
    let mut recommendations: Vec<String> = broken.iter().map(|(_, fix)| fix.clone()).collect();
    if config.gateway.auth.mode == AuthMode::None {
        recommendations
            .push("turn auth on even on loopback: other local users and browsers can reach 127.0.0.1".into());
    }
    if matches!(
        profile,
        RemoteProfile::TailscaleServe | RemoteProfile::TailscaleFunnel | RemoteProfile::ProxyRemote
    ) && config.gateway.http.allowed_origins.is_empty()
    {
        recommendations.push(
            "for the Control UI through the remote name, add its origin (https://<name>) to gateway.http.allowed_origins"
                .into(),
        );
    }
    if profile == RemoteProfile::PasswordRemote && loopback {
        recommendations.push("the bind is loopback: set gateway.bind = \"lan\" for other machines to reach it, or use an SSH tunnel".into());
    }
    Posture {
        profile: profile.as_str().into(),
        posture: posture.into(),
        gate: if broken.is_empty() { "pass" } else { "hold" }.into(),
        risk_level: risk.into(),
        bind: config.gateway.bind.to_string(),
        bind_is_loopback: loopback,
        port: facts.port,
        auth: AuthFacts {
            mode: config.gateway.auth.mode.as_str().into(),
            password_set: facts.password_set,
            trusted_proxies: config.gateway.http.trusted_proxies.iter().map(|p| p.to_string()).collect(),
        },
        reason_codes: broken.iter().map(|(code, _)| (*code).to_owned()).collect(),
        recommendations,
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Workflow {
    pub name: String,
    pub steps: Vec<String>,
    pub commands: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Plan {
    pub profile: String,
    pub gate: String,
    pub checks: Vec<Check>,
    pub workflows: Vec<Workflow>,
}

fn check(name: &str, ok: bool, detail: String) -> Check {
    Check { name: name.into(), status: if ok { "pass" } else { "hold" }.into(), detail }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

pub fn plan(posture: &Posture) -> Plan {
    let port = posture.port;
    let local = format!("http://127.0.0.1:{port}");
    let mut checks = vec![
        check("bind", true, format!("bind={} loopback={}", posture.bind, posture.bind_is_loopback)),
        check("auth", posture.auth.mode != "none", format!("mode={}", posture.auth.mode)),
    ];
    let tailscale = posture.profile.starts_with("tailscale");
    if posture.auth.mode == "password" {
        checks.push(check("password", posture.auth.password_set, "gatewayctl password set".into()));
    }
    if posture.profile == "proxy-remote" {
        checks.push(check(
            "trusted_proxies",
            !posture.auth.trusted_proxies.is_empty(),
            posture.auth.trusted_proxies.join(","),
        ));
    }
    if tailscale {
        let found = on_path("tailscale");
        let detail =
            if found { "tailscale found on PATH" } else { "install Tailscale and run `tailscale up` first" };
        checks.push(check("tailscale_cli", found, detail.into()));
    }
    let ssh = Workflow {
        name: "ssh-tunnel".into(),
        steps: vec![
            "from the other machine, forward a local port to this gateway's loopback port over SSH".into(),
            format!("then open http://127.0.0.1:{port}/ there (the gateway still sees a loopback client)"),
        ],
        commands: vec![format!("ssh -N -L {port}:127.0.0.1:{port} user@host")],
    };
    let mut workflows = Vec::new();
    match posture.profile.as_str() {
        "tailscale-serve" => workflows.push(Workflow {
            name: "tailscale-serve".into(),
            steps: vec![
                "share the loopback port with your tailnet over HTTPS (tailnet members only)".into(),
                "open https://<this machine's MagicDNS name>/ from another tailnet device".into(),
            ],
            commands: vec![format!("tailscale serve --bg --https=443 {local}"), "tailscale serve status".into()],
        }),
        "tailscale-funnel" => workflows.push(Workflow {
            name: "tailscale-funnel".into(),
            steps: vec![
                "publish the loopback port on the public internet through Tailscale Funnel".into(),
                "anyone can reach the sign-in page: the password is the only gate, keep it long".into(),
            ],
            commands: vec![format!("tailscale funnel --bg --https=443 {local}"), "tailscale funnel status".into()],
        }),
        "proxy-remote" => workflows.push(Workflow {
            name: "reverse-proxy".into(),
            steps: vec![
                format!("point the proxy at {local} (WebSocket upgrade allowed)"),
                "keep the proxy's address in gateway.http.trusted_proxies; it must set X-Forwarded-For".into(),
            ],
            commands: vec![format!("curl -fsS {local}/healthz")],
        }),
        "password-remote" => workflows.push(Workflow {
            name: "password-lan".into(),
            steps: vec![
                "clients on the network sign in with the password (the Control UI, or POST /gateway/auth/session)".into(),
                format!("allow TCP port {port} in the host firewall for the networks that need it"),
            ],
            commands: vec!["gatewayctl password set".into(), format!("curl -fsS http://<this host>:{port}/healthz")],
        }),
        _ => {}
    }
    workflows.push(ssh);
    Plan { profile: posture.profile.clone(), gate: posture.gate.clone(), checks, workflows }
}

/// The profile asked for: the argument, else `--profile` when it names a remote profile, else
/// `remote.profile` from the config.
fn chosen(arg: Option<&str>, instance_flag: Option<&str>, config: &Config) -> Result<RemoteProfile> {
    let names = || RemoteProfile::ALL.map(|p| p.as_str()).join(", ");
    match arg.or(instance_flag.filter(|f| RemoteProfile::parse(f).is_some())) {
        Some(name) => RemoteProfile::parse(name).with_context(|| {
            format!("no remote-access profile {}: use one of {}", gateway_proto::quote::short(name), names())
        }),
        None => Ok(config.remote.profile),
    }
}

/// The config and the facts beside it, for this instance.
pub fn load(ctx: &Ctx) -> Result<(Config, Facts)> {
    let paths = ctx.paths()?;
    let loaded = gateway_config::load_file(&paths.config_file).map_err(|issues| {
        anyhow::anyhow!("{}", issues.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))
    })?;
    let config = loaded.config;
    let port = config.gateway.port.map_or(ctx.profile.default_port(), |p| p.port());
    let password_set = config.gateway.auth.password.is_some()
        || std::env::var_os("GATEWAY_PASSWORD").is_some()
        || paths.password_file().exists();
    Ok((config, Facts { port, password_set }))
}

pub fn run(
    ctx: &Ctx,
    profile: Option<&str>,
    instance_flag: Option<&str>,
    json: bool,
    want_plan: bool,
) -> Result<i32> {
    let (config, facts) = load(ctx)?;
    let profile = chosen(profile, instance_flag, &config)?;
    let posture = inspect(profile, &config, &facts);
    if !want_plan {
        if json {
            print_json(&posture)?;
        } else {
            print_posture(&posture);
        }
        return Ok(if posture.gate == "pass" { exit::OK } else { exit::FAILURE });
    }
    if posture.gate != "pass" {
        if json {
            print_json(&posture)?;
        } else {
            eprintln!("refusing to plan {}: the gate holds", posture.profile);
            for (code, fix) in posture.reason_codes.iter().zip(&posture.recommendations) {
                eprintln!("  {code}: {fix}");
            }
            eprintln!(
                "fix the config (`gatewayctl config path`), then run `gatewayctl remote inspect {}` again",
                posture.profile
            );
        }
        return Ok(exit::CONFIG);
    }
    let plan = plan(&posture);
    if json {
        print_json(&plan)?;
        return Ok(exit::OK);
    }
    println!("profile={} gate={} risk_level={}", plan.profile, plan.gate, posture.risk_level);
    for c in &plan.checks {
        println!("check={} status={} detail={}", c.name, c.status, c.detail);
    }
    for w in &plan.workflows {
        println!("\nworkflow {}:", w.name);
        for (i, step) in w.steps.iter().enumerate() {
            println!("  {}. {step}", i + 1);
        }
        for command in &w.commands {
            println!("  $ {command}");
        }
    }
    Ok(exit::OK)
}

fn print_posture(p: &Posture) {
    println!("profile:     {}", p.profile);
    println!("posture:     {}", p.posture);
    println!("gate:        {}", p.gate);
    println!("risk level:  {}", p.risk_level);
    println!("bind:        {} (loopback: {}), port {}", p.bind, p.bind_is_loopback, p.port);
    println!(
        "auth:        {} (password set: {}; trusted proxies: {})",
        p.auth.mode,
        p.auth.password_set,
        if p.auth.trusted_proxies.is_empty() { "none".to_owned() } else { p.auth.trusted_proxies.join(", ") }
    );
    if !p.reason_codes.is_empty() {
        println!("reasons:     {}", p.reason_codes.join(", "));
    }
    for r in &p.recommendations {
        println!("  - {r}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_config::Bind;

    fn config(bind: Bind, auth: AuthMode, proxies: &[&str]) -> Config {
        let mut c = Config::default();
        c.gateway.bind = bind;
        c.gateway.auth.mode = auth;
        c.gateway.http.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
        c
    }

    fn gate(profile: RemoteProfile, c: &Config, password_set: bool) -> (String, Vec<String>) {
        let p = inspect(profile, c, &Facts { port: 18789, password_set });
        (p.gate, p.reason_codes)
    }

    fn holds(profile: RemoteProfile, c: &Config, password_set: bool) -> Vec<String> {
        let (g, codes) = gate(profile, c, password_set);
        assert_eq!(g, "hold", "{profile:?}");
        codes
    }

    fn passes(profile: RemoteProfile, c: &Config, password_set: bool) {
        assert_eq!(gate(profile, c, password_set), ("pass".to_owned(), vec![]), "{profile:?}");
    }

    #[test]
    fn local_only_holds_on_any_non_loopback_bind() {
        passes(RemoteProfile::LocalOnly, &config(Bind::Loopback, AuthMode::Token, &[]), false);
        assert_eq!(
            holds(RemoteProfile::LocalOnly, &config(Bind::Lan, AuthMode::Token, &[]), false),
            ["non_loopback_bind"]
        );
    }

    #[test]
    fn password_remote_needs_password_auth_with_a_password() {
        passes(RemoteProfile::PasswordRemote, &config(Bind::Lan, AuthMode::Password, &[]), true);
        assert_eq!(
            holds(RemoteProfile::PasswordRemote, &config(Bind::Lan, AuthMode::Password, &[]), false),
            ["password_not_set"]
        );
        assert_eq!(
            holds(RemoteProfile::PasswordRemote, &config(Bind::Lan, AuthMode::Token, &[]), true),
            ["password_auth_required"]
        );
    }

    #[test]
    fn proxy_remote_needs_token_or_trusted_proxy_auth_and_the_proxies() {
        passes(RemoteProfile::ProxyRemote, &config(Bind::Loopback, AuthMode::Token, &["127.0.0.1"]), false);
        passes(
            RemoteProfile::ProxyRemote,
            &config(Bind::Loopback, AuthMode::TrustedProxy, &["10.0.0.2"]),
            false,
        );
        assert_eq!(
            holds(RemoteProfile::ProxyRemote, &config(Bind::Loopback, AuthMode::Token, &[]), false),
            ["trusted_proxies_missing"]
        );
        assert_eq!(
            holds(
                RemoteProfile::ProxyRemote,
                &config(Bind::Loopback, AuthMode::Password, &["127.0.0.1"]),
                true
            ),
            ["token_or_trusted_proxy_auth_required"]
        );
    }

    #[test]
    fn tailscale_serve_needs_loopback_and_token_or_password() {
        passes(RemoteProfile::TailscaleServe, &config(Bind::Loopback, AuthMode::Token, &[]), false);
        passes(RemoteProfile::TailscaleServe, &config(Bind::Loopback, AuthMode::Password, &[]), true);
        assert_eq!(
            holds(RemoteProfile::TailscaleServe, &config(Bind::Lan, AuthMode::Token, &[]), false),
            ["loopback_bind_required"]
        );
    }

    #[test]
    fn tailscale_funnel_needs_loopback_and_a_password() {
        passes(RemoteProfile::TailscaleFunnel, &config(Bind::Loopback, AuthMode::Password, &[]), true);
        assert_eq!(
            holds(RemoteProfile::TailscaleFunnel, &config(Bind::Loopback, AuthMode::Token, &[]), true),
            ["password_auth_required"]
        );
        assert_eq!(
            holds(RemoteProfile::TailscaleFunnel, &config(Bind::Lan, AuthMode::Password, &[]), true),
            ["loopback_bind_required"]
        );
    }

    #[test]
    fn auth_none_is_never_remote() {
        for profile in RemoteProfile::ALL.into_iter().filter(|p| *p != RemoteProfile::LocalOnly) {
            assert!(holds(profile, &config(Bind::Loopback, AuthMode::None, &["127.0.0.1"]), true)
                .contains(&"auth_none_never_remote".to_owned()));
        }
    }

    #[test]
    fn a_plan_names_the_exact_commands() {
        let p = inspect(
            RemoteProfile::TailscaleServe,
            &config(Bind::Loopback, AuthMode::Token, &[]),
            &Facts { port: 18789, password_set: false },
        );
        let plan = plan(&p);
        let commands: Vec<&str> =
            plan.workflows.iter().flat_map(|w| w.commands.iter().map(String::as_str)).collect();
        assert!(
            commands.contains(&"tailscale serve --bg --https=443 http://127.0.0.1:18789"),
            "{commands:?}"
        );
        assert!(commands.contains(&"ssh -N -L 18789:127.0.0.1:18789 user@host"), "{commands:?}");
    }
}
