//! What the OpenAI-compatible APIs have served since start, for the status report's
//! `gateway.openai_compat` block (the runbook's names). The HTTP door records each answer; this
//! keeps the counts bounded: reason codes are the gateway's own (a fixed set), ignored field
//! names are counted for at most [`MAX_FIELDS`] distinct names, then as `other`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use gateway_proto::api::OpenAiCompatInfo;

/// Distinct ignored field names counted apart.
pub const MAX_FIELDS: usize = 64;
/// Reason codes kept in `last_reason_codes`, newest last.
const LAST_REASONS: usize = 10;

/// Which endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Models,
    Responses,
    Other,
}

#[derive(Default)]
pub struct OpenAiStats {
    total: AtomicU64,
    chat_completions: AtomicU64,
    completions: AtomicU64,
    models: AtomicU64,
    responses: AtomicU64,
    stream: AtomicU64,
    translation_failures: AtomicU64,
    execution_failures: AtomicU64,
    reasons: Mutex<Reasons>,
}

#[derive(Default)]
struct Reasons {
    counts: BTreeMap<&'static str, u64>,
    ignored: BTreeMap<String, u64>,
    last: VecDeque<&'static str>,
}

/// One answer, as the door saw it.
pub struct Answer<'a> {
    pub endpoint: Endpoint,
    pub status: u16,
    pub streamed: bool,
    /// The gateway's error code, when the answer is an error.
    pub reason: Option<&'static str>,
    pub ignored_fields: &'a [&'a str],
}

impl OpenAiStats {
    pub fn record(&self, answer: &Answer<'_>) {
        let bump = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        bump(&self.total);
        match answer.endpoint {
            Endpoint::ChatCompletions => bump(&self.chat_completions),
            Endpoint::Completions => bump(&self.completions),
            Endpoint::Models => bump(&self.models),
            Endpoint::Responses => bump(&self.responses),
            Endpoint::Other => {}
        }
        if answer.streamed {
            bump(&self.stream);
        }
        match answer.status {
            // Credentials and rate limits are counted by the auth block, not here.
            401 | 403 | 429 => {}
            400..=499 => bump(&self.translation_failures),
            500..=599 => bump(&self.execution_failures),
            _ => {}
        }
        if answer.reason.is_none() && answer.ignored_fields.is_empty() {
            return;
        }
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(code) = answer.reason {
            *reasons.counts.entry(code).or_default() += 1;
            if reasons.last.len() == LAST_REASONS {
                reasons.last.pop_front();
            }
            reasons.last.push_back(code);
        }
        for field in answer.ignored_fields {
            let known = reasons.ignored.contains_key(*field) || reasons.ignored.len() < MAX_FIELDS;
            let name = if known { (*field).to_owned() } else { "other".to_owned() };
            *reasons.ignored.entry(name).or_default() += 1;
        }
    }

    pub fn info(&self) -> OpenAiCompatInfo {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        OpenAiCompatInfo {
            chat_completions_endpoint: "/v1/chat/completions".into(),
            completions_endpoint: "/v1/completions".into(),
            models_endpoint: "/v1/models".into(),
            responses_endpoint: "/v1/responses".into(),
            total_requests: get(&self.total),
            chat_completions_requests: get(&self.chat_completions),
            completions_requests: get(&self.completions),
            models_requests: get(&self.models),
            responses_requests: get(&self.responses),
            stream_requests: get(&self.stream),
            translation_failures: get(&self.translation_failures),
            execution_failures: get(&self.execution_failures),
            reason_code_counts: reasons.counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ignored_field_counts: reasons.ignored.clone(),
            last_reason_codes: reasons.last.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, reason: Option<&'static str>, ignored: &[&str]) -> OpenAiCompatInfo {
        let stats = OpenAiStats::default();
        stats.record(&Answer {
            endpoint: Endpoint::ChatCompletions,
            status,
            streamed: false,
            reason,
            ignored_fields: ignored,
        });
        stats.info()
    }

    #[test]
    fn refused_requests_are_translation_failures_and_upstream_ones_execution_failures() {
        let bad = answer(400, Some("invalid_request"), &[]);
        assert_eq!((bad.translation_failures, bad.execution_failures), (1, 0));
        assert_eq!(bad.reason_code_counts.get("invalid_request"), Some(&1));
        let upstream = answer(502, Some("upstream_error"), &[]);
        assert_eq!((upstream.translation_failures, upstream.execution_failures), (0, 1));
        let unauthorized = answer(401, Some("unauthorized"), &[]);
        assert_eq!((unauthorized.translation_failures, unauthorized.execution_failures), (0, 0));
    }

    #[test]
    fn ignored_field_names_past_the_cap_count_as_other_and_the_last_codes_are_kept() {
        let stats = OpenAiStats::default();
        let names: Vec<String> = (0..MAX_FIELDS + 2).map(|i| format!("f{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for _ in 0..LAST_REASONS + 1 {
            stats.record(&Answer {
                endpoint: Endpoint::Other,
                status: 404,
                streamed: false,
                reason: Some("not_found"),
                ignored_fields: &refs,
            });
        }
        let info = stats.info();
        assert_eq!(info.ignored_field_counts.len(), MAX_FIELDS + 1);
        assert_eq!(info.ignored_field_counts.get("other"), Some(&(2 * (LAST_REASONS as u64 + 1))));
        assert_eq!(info.last_reason_codes.len(), LAST_REASONS);
    }
}
