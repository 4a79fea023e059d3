//! Logging: journald with structured fields when systemd connected our stderr to the journal,
//! otherwise text (or JSON) on stderr; always also a size-bounded JSONL file in the state dir,
//! which `gatewayctl logs` reads when there is no journal (lines: `json_log`). Secrets are never
//! logged.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_config::{LogLevel, Logging};

use super::json_log::JsonLine;
use super::rotating_file::RotatingFile;
use tokio::sync::Notify;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Handles to change logging while running (hot keys `logging.*`).
/// The format of log lines on stderr (`gatewayd run --log-format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
    verbose: bool,
    file: Arc<RotatingFile>,
}

impl LogControl {
    pub fn apply(&self, logging: &Logging) {
        let level = if self.verbose { LogLevel::Debug } else { logging.level };
        if let Err(e) = self.filter.reload(filter_for(level)) {
            tracing::warn!(error = %e, "cannot change the log level");
        }
        self.file.set_max_bytes(logging.file_max_bytes.get());
    }

    /// Woken after each line written to the JSONL file (for `logs --follow`).
    pub fn appended(&self) -> &Notify {
        self.file.appended()
    }

    pub fn file_path(&self) -> &Path {
        self.file.path()
    }
}

/// Our own crates log at the configured level; dependencies only warnings.
fn filter_for(level: LogLevel) -> EnvFilter {
    EnvFilter::new(format!("warn,gatewayd={0},gateway_config={0}", level.as_str()))
}

pub struct Setup<'a> {
    pub format: LogFormat,
    pub verbose: bool,
    pub logging: &'a Logging,
    pub file: PathBuf,
    pub profile: Option<&'a str>,
}

/// Installs the global subscriber. Fails only if the log file cannot be opened.
pub fn init(setup: Setup<'_>) -> io::Result<LogControl> {
    let level = if setup.verbose { LogLevel::Debug } else { setup.logging.level };
    let (filter, handle) = reload::Layer::new(filter_for(level));
    let file = Arc::new(RotatingFile::open(setup.file, setup.logging.file_max_bytes.get())?);

    type Boxed = Box<
        dyn Layer<tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>>
            + Send
            + Sync,
    >;
    let mut layers: Vec<Boxed> = Vec::new();
    let journald = stderr_is_journal().then(tracing_journald::layer).and_then(Result::ok).map(|layer| {
        // Custom fields are not prefixed: `journalctl GATEWAY_PROFILE=work` finds one instance.
        let fields = [("GATEWAY_PROFILE", setup.profile.unwrap_or("default"))];
        layer
            .with_syslog_identifier("gatewayd".to_owned())
            .with_field_prefix(Some("GATEWAY".to_owned()))
            .with_custom_fields(fields)
    });
    match (journald, setup.format) {
        (Some(j), _) => layers.push(Box::new(j)),
        (None, LogFormat::Text) => layers.push(Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(io::stderr)
                .with_target(false)
                .with_ansi(stderr_wants_colour()),
        )),
        (None, LogFormat::Json) => layers
            .push(Box::new(tracing_subscriber::fmt::layer().event_format(JsonLine).with_writer(io::stderr))),
    }
    layers.push(Box::new(
        tracing_subscriber::fmt::layer().event_format(JsonLine).with_writer(FileWriter(file.clone())),
    ));
    tracing_subscriber::registry().with(filter).with(layers).init();
    Ok(LogControl { filter: handle, verbose: setup.verbose, file })
}

/// Colour only for a person at a terminal: a file or pipe (`gatewayctl start`'s gatewayd.out, a
/// shell redirect) gets plain text, and `NO_COLOR` (any non-empty value, no-color.org) turns it off.
fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal;
    gateway_proto::paths::non_empty_env("NO_COLOR").is_none() && io::stderr().is_terminal()
}

/// systemd sets `JOURNAL_STREAM=dev:inode` for a stderr connected to the journal; it is only ours
/// if stderr is still that very file (a child of the service may inherit the variable).
fn stderr_is_journal() -> bool {
    let Some(value) = gateway_proto::paths::non_empty_env("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// tracing's fmt layer formats a whole event, then writes it once: one line per write.
struct FileWriter(Arc<RotatingFile>);

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter { file: self.0.clone(), buf: Vec::new() }
    }
}

struct LineWriter {
    file: Arc<RotatingFile>,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            // Nowhere to report a failed log write; the stderr or journal copy still has it.
            let _ = self.file.write_line(&self.buf);
        }
    }
}
