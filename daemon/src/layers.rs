//! Keeps the layers (`lib.rs`, docs/architecture.md): reads every module of `daemon/src`, finds
//! each path into the crate (`use crate::…`, inline `crate::…`, `super::…`), and fails on an
//! import the layers forbid, naming the file, the line and the rule.

use std::path::{Path, PathBuf};

use crate::api::{MOUNTS, PLUMBING};

/// One forbidden import.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    target: String,
    rule: &'static str,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "daemon/src/{}:{}: imports crate::{}: {}", self.file, self.line, self.target, self.rule)
    }
}

/// The module path of a file under `src/`: `api/ws/mod.rs` is `api::ws`, `core/gateway.rs` is
/// `core::gateway`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Every path into the crate on a line, as module segments from the crate root (`crate::a::b`,
/// `super::b` resolved against `module`, and each item of a `{…}` group).
fn crate_paths(line: &str, module: &[String]) -> Vec<Vec<String>> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = find_root(rest) {
        let tail = &rest[at..];
        let (mut base, after) = match tail.strip_prefix("crate::") {
            Some(after) => (Vec::new(), after),
            None => resolve_relative(tail, module),
        };
        let segment_end =
            after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(after.len());
        let segments = &after[..segment_end];
        base.extend(segments.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
        let next = &after[segment_end..];
        if segments.ends_with("::") && next.starts_with('{') {
            let group = &next[1..next.find('}').unwrap_or(next.len())];
            for item in group.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() && first != "self" {
                    let mut path = base.clone();
                    path.push(first.to_owned());
                    found.push(path);
                }
            }
        } else if !base.is_empty() {
            found.push(base);
        }
        rest = next;
    }
    found
}

/// Where the next `crate::`, `super::` or `self::` starts, as a whole word.
fn find_root(text: &str) -> Option<usize> {
    ["crate::", "super::", "self::"]
        .iter()
        .filter_map(|root| {
            text.match_indices(root)
                .find(|(i, _)| !text[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'))
                .map(|(i, _)| i)
        })
        .min()
}

/// `super::super::x` from `api::ws::chat` is `api::x`.
fn resolve_relative<'a>(tail: &'a str, module: &[String]) -> (Vec<String>, &'a str) {
    let mut base = module.to_vec();
    let mut after = tail;
    if let Some(rest) = after.strip_prefix("self::") {
        return (base, rest);
    }
    while let Some(rest) = after.strip_prefix("super::") {
        base.pop();
        after = rest;
    }
    (base, after)
}

/// The door a module belongs to (`api::ws::chat` → `ws`), or None for plumbing and mounts.
fn door(module: &[String]) -> Option<&str> {
    match module {
        [api, name, ..] if api == "api" => {
            let name = name.as_str();
            (!PLUMBING.contains(&name) && !MOUNTS.contains(&name)).then_some(name)
        }
        _ => None,
    }
}

/// The rule a file breaks by importing `target`, if any.
fn rule(module: &[String], target: &[String]) -> Option<&'static str> {
    let layer = module.first().map(String::as_str);
    let target_layer = target.first().map(String::as_str);
    if matches!(target_layer, Some("startup" | "cli")) && matches!(layer, Some("core" | "runtime" | "api")) {
        return Some("the layers never import the start-up code above them");
    }
    match (layer, target_layer) {
        (Some("core"), Some("api")) => Some("the core never imports a door"),
        (Some("runtime"), Some("api")) => Some("the runtime never imports a door"),
        (Some("runtime"), Some("core")) if target.get(1).is_some_and(|m| m == "gateway") => {
            Some("the runtime takes what it needs as arguments, never the Gateway value")
        }
        (Some("api"), Some("api")) => {
            let from = module.get(1).map(String::as_str);
            if from.is_some_and(|m| MOUNTS.contains(&m)) {
                return None;
            }
            let to = door(target)?;
            if door(module) == Some(to) {
                return None;
            }
            Some(if door(module).is_some() {
                "a door never imports another door (shared plumbing belongs in api's plumbing modules)"
            } else {
                "api's plumbing never imports a door"
            })
        }
        _ => None,
    }
}

fn violations(files: &[(String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (file, text) in files {
        let module = module_of(file);
        for (i, line) in text.lines().enumerate() {
            for target in crate_paths(line, &module) {
                if let Some(rule) = rule(&module, &target) {
                    out.push(Violation { file: file.clone(), line: i + 1, target: target.join("::"), rule });
                }
            }
        }
    }
    out
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("src is readable").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.strip_prefix(root).expect("under src").to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).expect("a source file is text")));
        }
    }
}

#[test]
fn no_module_of_the_daemon_breaks_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 50, "read only {} files from {}", files.len(), root.display());
    let found = violations(&files);
    let report: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "imports that break the layers:\n{}", report.join("\n"));
}

#[test]
fn each_forbidden_import_is_named_with_its_file_and_line() {
    let files = [
        ("core/reload.rs", "use std::sync::Arc;\nuse crate::api::ws::Hub;\n"),
        ("runtime/agent/run.rs", "    let gw: &crate::core::gateway::Gateway;\n"),
        ("runtime/tools/builtin.rs", "use crate::core::store::Store; // the store is fine\n"),
        ("api/hooks/mod.rs", "use crate::api::{auth, error, openai};\nuse self::token::presented;\n"),
        ("api/openai/chat.rs", "use super::super::hooks::x;\nuse super::wire;\n"),
        ("api/admin.rs", "use super::ws::hub::Conn;\n"),
        ("api/error.rs", "let x = crate::api::control::bind;\n"),
        ("api/router.rs", "use crate::api::{admin, ws};\n"),
        ("core/status.rs", "// crate::api::ws in a comment is not an import\n"),
    ]
    .map(|(f, t)| (f.to_owned(), t.to_owned()));
    let found: Vec<String> = violations(&files).iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "daemon/src/core/reload.rs:2: imports crate::api::ws::Hub: the core never imports a door",
            "daemon/src/runtime/agent/run.rs:1: imports crate::core::gateway::Gateway: the runtime takes what it needs as arguments, never the Gateway value",
            "daemon/src/api/hooks/mod.rs:1: imports crate::api::openai: a door never imports another door (shared plumbing belongs in api's plumbing modules)",
            "daemon/src/api/openai/chat.rs:1: imports crate::api::hooks::x: a door never imports another door (shared plumbing belongs in api's plumbing modules)",
            "daemon/src/api/admin.rs:1: imports crate::api::ws::hub::Conn: a door never imports another door (shared plumbing belongs in api's plumbing modules)",
            "daemon/src/api/error.rs:1: imports crate::api::control::bind: api's plumbing never imports a door",
        ]
    );
}
