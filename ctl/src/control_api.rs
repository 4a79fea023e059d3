//! The control API as typed calls, one per route (docs/control-api.md): commands ask the client
//! for `status()` or `reload()` and never spell a route or its answer's type themselves.

use std::time::Duration;

use gateway_proto::api::{
    route, ApproveBody, ConfigView, DeviceRecord, DevicesReport, HealthReport, LogTail, PairingRequest,
    PasswordBody, ReloadReport, RestartReport, RevokeReport, RevokedReport, SecretsAudit, SignInsReport,
    StatusReport, StopReport, TokenInfo,
};

use crate::client::{Client, Error, DEFAULT_TIMEOUT};

/// A reload waits for the transaction, which may build new provider clients.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    pub fn status(&self) -> Result<StatusReport, Error> {
        self.status_within(DEFAULT_TIMEOUT)
    }

    /// `status` with its own deadline (polls, probes of other gateways).
    pub fn status_within(&self, timeout: Duration) -> Result<StatusReport, Error> {
        self.call("GET", route::STATUS, timeout)
    }

    /// The health checks; a 503 is an answer too (the report says which check failed).
    pub fn health(&self) -> Result<HealthReport, Error> {
        let response = self.send("GET", route::HEALTH, DEFAULT_TIMEOUT)?;
        if !matches!(response.status, 200 | 503) {
            return Err(self.refused(&response));
        }
        self.decode(&response)
    }

    pub fn reload(&self) -> Result<ReloadReport, Error> {
        self.call("POST", route::RELOAD, RELOAD_TIMEOUT)
    }

    pub fn stop(&self) -> Result<StopReport, Error> {
        self.call("POST", route::STOP, DEFAULT_TIMEOUT)
    }

    pub fn reload_secrets(&self) -> Result<ReloadReport, Error> {
        self.call("POST", route::SECRETS_RELOAD, RELOAD_TIMEOUT)
    }

    pub fn secrets_audit(&self) -> Result<SecretsAudit, Error> {
        self.get(route::SECRETS_AUDIT)
    }

    pub fn restart(&self) -> Result<RestartReport, Error> {
        self.call("POST", route::RESTART, DEFAULT_TIMEOUT)
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> Result<LogTail, Error> {
        self.get(&format!("{}?lines={lines}", route::LOGS))
    }

    /// The lines after `cursor`, waiting up to `wait_ms` for one.
    pub fn log_after(&self, cursor: u64, wait_ms: u64, timeout: Duration) -> Result<LogTail, Error> {
        self.call("GET", &format!("{}?cursor={cursor}&wait_ms={wait_ms}", route::LOGS), timeout)
    }

    pub fn config(&self) -> Result<ConfigView, Error> {
        self.get(route::CONFIG)
    }

    pub fn token(&self) -> Result<TokenInfo, Error> {
        self.get(route::TOKEN)
    }

    /// The chat channel accounts (the reference's `channels.status` shape); `probe` checks each
    /// first, which takes up to 20 s.
    pub fn channels(&self, probe: bool) -> Result<serde_json::Value, Error> {
        let path = if probe { format!("{}?probe=1", route::CHANNELS) } else { route::CHANNELS.to_owned() };
        self.call("GET", &path, Duration::from_secs(45))
    }

    pub fn pairing(&self) -> Result<gateway_proto::api::PairingReport, Error> {
        self.get(route::PAIRING)
    }

    /// Approves or rejects a channel pairing code.
    pub fn settle_pairing(
        &self,
        channel: &str,
        code: &str,
        approve: bool,
    ) -> Result<gateway_proto::api::ChannelPairing, Error> {
        let path =
            format!("{}/{channel}/{code}/{}", route::PAIRING, if approve { "approve" } else { "reject" });
        self.call("POST", &path, DEFAULT_TIMEOUT)
    }

    pub fn ui_link(&self) -> Result<gateway_proto::api::UiLink, Error> {
        self.call("POST", route::UI_CODE, DEFAULT_TIMEOUT)
    }

    pub fn rotate_token(&self) -> Result<TokenInfo, Error> {
        self.call("POST", route::TOKEN_ROTATE, DEFAULT_TIMEOUT)
    }

    pub fn devices(&self) -> Result<DevicesReport, Error> {
        self.get(route::DEVICES)
    }

    pub fn approve_device(&self, id: &str, body: &ApproveBody) -> Result<DeviceRecord, Error> {
        self.call_json("POST", &route::device_action(id, "approve"), body, DEFAULT_TIMEOUT)
    }

    pub fn reject_device(&self, id: &str) -> Result<PairingRequest, Error> {
        self.call("POST", &route::device_action(id, "reject"), DEFAULT_TIMEOUT)
    }

    pub fn revoke_device(&self, id: &str) -> Result<RevokeReport, Error> {
        self.call("POST", &route::device_action(id, "revoke"), DEFAULT_TIMEOUT)
    }

    pub fn set_password(&self, password: &str) -> Result<RevokedReport, Error> {
        self.call_json(
            "POST",
            route::PASSWORD,
            &PasswordBody { password: password.to_owned() },
            DEFAULT_TIMEOUT,
        )
    }

    pub fn signins(&self) -> Result<SignInsReport, Error> {
        self.get(route::SIGNINS)
    }

    pub fn revoke_signin(&self, id: &str) -> Result<RevokedReport, Error> {
        self.call("POST", &route::SIGNIN_REVOKE.replace("{id}", id), DEFAULT_TIMEOUT)
    }

    pub fn cron_status(&self) -> Result<gateway_proto::cron::CronStatus, Error> {
        self.get(route::CRON_STATUS)
    }

    pub fn cron_jobs(&self) -> Result<Vec<gateway_proto::cron::Job>, Error> {
        self.get(route::CRON_JOBS)
    }

    pub fn cron_job(&self, job: &str) -> Result<gateway_proto::cron::Job, Error> {
        self.get(&route::cron_job(job, ""))
    }

    pub fn cron_add(&self, spec: &gateway_proto::cron::JobSpec) -> Result<gateway_proto::cron::Job, Error> {
        self.call_json("POST", route::CRON_JOBS, spec, DEFAULT_TIMEOUT)
    }

    pub fn cron_edit(
        &self,
        job: &str,
        patch: &gateway_proto::cron::JobPatch,
    ) -> Result<gateway_proto::cron::Job, Error> {
        self.call_json("PATCH", &route::cron_job(job, ""), patch, DEFAULT_TIMEOUT)
    }

    pub fn cron_remove(&self, job: &str) -> Result<gateway_proto::cron::Job, Error> {
        self.call("DELETE", &route::cron_job(job, ""), DEFAULT_TIMEOUT)
    }

    /// Runs a job now; with `wait`, answers when it ended (or when `wait` ran out).
    pub fn cron_run(
        &self,
        job: &str,
        wait: Option<Duration>,
    ) -> Result<gateway_proto::cron::RunRecord, Error> {
        let body = serde_json::json!({ "waitMs": wait.map(|w| w.as_millis() as u64) });
        let timeout = wait.map_or(DEFAULT_TIMEOUT, |w| w + DEFAULT_TIMEOUT);
        self.call_json("POST", &route::cron_job(job, "/run"), &body, timeout)
    }

    pub fn cron_runs(
        &self,
        job: Option<&str>,
        limit: u32,
    ) -> Result<Vec<gateway_proto::cron::RunRecord>, Error> {
        let job = job.map(|j| format!("&job={}", route::segment(j))).unwrap_or_default();
        self.get(&format!("{}?limit={limit}{job}", route::CRON_RUNS))
    }
}
