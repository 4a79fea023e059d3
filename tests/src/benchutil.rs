//! Helpers shared by the benchmark binaries (`gateway-bench`, `gateway-ws-bench`): summary
//! statistics, the machine header, `/proc` readings, and making sure children die with us.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// Median, min and max of a set of samples.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(mut xs: Vec<f64>) -> Self {
        assert!(!xs.is_empty(), "no samples");
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
        Self { median, min: xs[0], max: xs[n - 1], n }
    }

    pub fn json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max, "runs": self.n })
    }
}

/// The `q` quantile (0..=1) of samples, nearest-rank; sorts them.
pub fn quantile(xs: &mut [f64], q: f64) -> f64 {
    assert!(!xs.is_empty(), "no samples");
    xs.sort_by(f64::total_cmp);
    let rank = (q * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// The number after a command-line flag.
pub fn arg_num<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T> {
    value
        .with_context(|| format!("{flag} needs a value"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} needs a number"))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU count, model and kernel, so results can be compared with the machine they came from.
pub struct Machine {
    pub nproc: usize,
    pub model: String,
    pub kernel: String,
    pub date: String,
}

impl Machine {
    /// The head of a results table: where and when, then the column titles.
    pub fn table_head(&self, peer: &str) -> String {
        let binaries = crate::bin("gatewayd").parent().map(|p| p.display().to_string()).unwrap_or_default();
        format!(
            "machine: {} cores, {}, Linux {}\ndate: {}\nbinaries: {binaries}\npeer: {peer}\n\n\
             | metric | ours (median, min-max) | target | OpenClaw peer | floor | verdict |\n\
             |---|---|---|---|---|---|\n",
            self.nproc, self.model, self.kernel, self.date,
        )
    }
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".into(), |k| k.trim().to_string());
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        model,
        kernel,
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

impl Machine {
    pub fn json(&self) -> Value {
        json!({ "nproc": self.nproc, "model": self.model, "kernel": self.kernel })
    }
}

pub fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// A `Key:   1234 kB` line of /proc/PID/status (the kernel's "kB" is KiB).
pub fn proc_kib(status: &str, key: &str) -> Result<f64> {
    let line =
        status.lines().find(|l| l.starts_with(key)).with_context(|| format!("no {key} in /proc status"))?;
    let kib = line.split_whitespace().nth(1).context("malformed line")?;
    Ok(kib.parse()?)
}

/// VmRSS and VmHWM of a process, in MB (10^6 bytes).
pub fn rss_hwm_mb(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    Ok((proc_kib(&status, "VmRSS:")? * 1024.0 / 1e6, proc_kib(&status, "VmHWM:")? * 1024.0 / 1e6))
}

/// CPU time a process has used so far, all its threads (live ones: a thread that has exited is
/// not counted, which the servers measured here do not have), from the scheduler's own
/// nanosecond counts (`/proc/PID/task/*/schedstat`).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let mut ns = 0u64;
    let tasks =
        std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("process {pid} is gone"))?;
    for task in tasks {
        let path = task?.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let first = text.split_whitespace().next().context("empty schedstat")?;
        ns += first.parse::<u64>().with_context(|| format!("{}: not a number", path.display()))?;
    }
    Ok(Duration::from_nanos(ns))
}

/// Makes a child spawned by `cmd` get SIGKILL when the thread that spawned it dies, so that a
/// benchmark that aborts (the release profile aborts on panic) or is killed leaves no daemon
/// behind. Spawn from the main thread.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Raises the soft limit on open files to the hard limit; children spawned afterwards inherit
/// it. Returns the new soft limit.
pub fn raise_nofile() -> Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrlimit");
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error()).context("setrlimit");
            }
        }
    }
    Ok(lim.rlim_cur)
}

// ---------------------------------------------------------------------------------------------
// Results tables: a row per metric beside its target, the peer's figure and a floor.

#[derive(Clone, Copy)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

pub struct Row {
    pub id: &'static str,
    pub metric: String,
    pub unit: &'static str,
    /// Decimals shown.
    pub prec: usize,
    pub ours: Stats,
    pub target: Option<Target>,
    pub peer: &'static str,
    pub floor: Option<(Stats, String)>,
}

impl Row {
    pub fn verdict(&self) -> Option<&'static str> {
        self.target.map(|t| {
            let meets = match t {
                Target::AtMost(x) => self.ours.median <= x,
                Target::AtLeast(x) => self.ours.median >= x,
            };
            if meets {
                "meets"
            } else {
                "misses"
            }
        })
    }

    pub fn target_text(&self) -> String {
        match self.target {
            None => "-".into(),
            Some(Target::AtMost(t)) => format!("<= {} {}", num(t), self.unit),
            Some(Target::AtLeast(t)) => format!(">= {} {}", num(t), self.unit),
        }
    }
}

/// A target or threshold as written in the target sheet: no needless decimals.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

pub fn fmt_stats(s: &Stats, unit: &str, prec: usize) -> String {
    format!("{:.p$} {unit} ({:.p$}-{:.p$}, n={})", s.median, s.min, s.max, s.n, p = prec)
}

/// The results table: the machine head, a row per metric, then the notes.
pub fn to_table(m: &Machine, peer: &str, rows: &[Row], notes: &[String]) -> String {
    let mut out = m.table_head(peer);
    for r in rows {
        let floor = r
            .floor
            .as_ref()
            .map_or("-".into(), |(s, what)| format!("{:.p$} {} ({what})", s.median, r.unit, p = r.prec));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {floor} | {} |",
            r.metric,
            fmt_stats(&r.ours, r.unit, r.prec),
            r.target_text(),
            r.peer,
            r.verdict().unwrap_or("-"),
        );
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// The same results as JSON (`--json`).
pub fn to_json(m: &Machine, peer: &str, rows: &[Row], notes: &[String], extra: Value) -> Value {
    let metrics: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (min, max) = match r.target {
                Some(Target::AtMost(t)) => (None, Some(t)),
                Some(Target::AtLeast(t)) => (Some(t), None),
                None => (None, None),
            };
            json!({
                "id": r.id,
                "metric": r.metric,
                "unit": r.unit,
                "ours": r.ours.json(),
                "target_min": min,
                "target_max": max,
                "peer": r.peer,
                "floor": r.floor.as_ref().map(|(s, what)| json!({ "what": what, "stats": s.json() })),
                "verdict": r.verdict(),
            })
        })
        .collect();
    json!({
        "machine": m.json(),
        "date": m.date,
        "peer": peer,
        "metrics": metrics,
        "notes": notes,
        "details": extra,
    })
}
