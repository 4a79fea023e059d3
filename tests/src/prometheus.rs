//! A real Prometheus for the metrics tests: Debian's `prometheus` on a free loopback port, with
//! a scrape config of the test's making and its data in a temp dir, killed on drop; and its
//! HTTP query API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{free_port, try_http, wait_for};

/// `/usr/bin/prometheus` (and `promtool` beside it), installed with apt when missing.
pub fn prometheus() -> PathBuf {
    crate::process::debian_program(Path::new("/usr/bin/prometheus"), "prometheus")
}

pub struct Prometheus {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    /// Scrapes `/gateway/metrics` on `target_port` every second with the bearer token in
    /// `token_file`.
    pub fn scraping(target_port: u16, token_file: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: gateway\n    \
                 metrics_path: /gateway/metrics\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
                token_file.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(prometheus())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts");
        let server = Self { port, dir, child };
        wait_for(Duration::from_secs(30), "prometheus to be ready", || {
            matches!(try_http(port, "GET", "/-/ready", &[]), Ok((200, _))).then_some(())
        });
        server
    }

    /// The result vector of an instant query.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let (status, body) = try_http(self.port, "GET", &path, &[]).unwrap_or((0, String::new()));
        assert_eq!(status, 200, "prometheus query {promql}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of the first series an instant query returns, once it returns one.
    pub fn value(&self, promql: &str, timeout: Duration) -> f64 {
        wait_for(timeout, &format!("prometheus to have {promql}"), || {
            let result = self.query(promql);
            result.first().and_then(|s| s["value"][1].as_str()?.parse().ok())
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
