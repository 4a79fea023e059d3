//! Reading an upstream's answer, the same for every HTTP API: one JSON document (a request
//! that did not stream, or a server that ignored `stream: true`), or server-sent events whose
//! JSON data an API-specific [`Accumulator`] turns into the reply, passing text on as it comes.

use serde_json::Value;

use super::upstream::{quote, BodyReader};
use super::{sse_parser, Deltas, ProviderError, Reply};

/// Builds one API's reply from its streamed events.
pub trait Accumulator: Default {
    /// Whether `data` is the API's non-JSON end marker (OpenAI's `[DONE]`); it is consumed.
    fn end_marker(&mut self, _data: &str) -> bool {
        false
    }
    /// The error the upstream reported in `event`, if it is an error report.
    fn error_in<'v>(&self, event: &'v Value) -> Option<&'v Value>;
    /// Takes one event; returns the text it added.
    fn add(&mut self, event: &Value) -> Option<String>;
    /// The answer is complete: nothing more needs reading.
    fn stopped(&self) -> bool;
    /// The stream, now closed, carried a whole answer.
    fn finished(&self) -> bool;
    /// What a stream that closed too early lacked, for the error (e.g. "message_stop").
    const END: &'static str;
    fn into_reply(self) -> Reply;
}

/// Reads the answer to a request made with `streamed`; `parse_whole` reads a JSON document.
pub async fn read<A: Accumulator>(
    mut reader: BodyReader,
    streamed: bool,
    parse_whole: fn(&Value) -> Result<Reply, String>,
    deltas: &mut Deltas<'_>,
) -> Result<Reply, ProviderError> {
    let what = reader.what().to_owned();
    if !streamed || !reader.is_event_stream() {
        let value = reader.json().await?;
        let reply = parse_whole(&value).map_err(|e| ProviderError::Upstream(format!("{what}: {e}")))?;
        deltas.send(&reply.message.content).await;
        return Ok(reply);
    }
    let mut parser = sse_parser::Parser::default();
    let mut acc = A::default();
    while let Some(chunk) = reader.chunk().await? {
        let events = parser.feed(&chunk).map_err(|e| ProviderError::Upstream(format!("{what}: {e}")))?;
        for event in events {
            if acc.end_marker(&event.data) {
                continue;
            }
            let value: Value = serde_json::from_str(&event.data).map_err(|e| {
                ProviderError::Upstream(format!(
                    "{what} sent an event that is not JSON ({e}): {}",
                    quote(&event.data)
                ))
            })?;
            if let Some(error) = acc.error_in(&value) {
                return Err(ProviderError::Upstream(format!("{what} reported an error mid-stream: {error}")));
            }
            if let Some(text) = acc.add(&value) {
                deltas.send(&text).await;
            }
        }
        if acc.stopped() {
            break;
        }
    }
    if !acc.finished() {
        return Err(ProviderError::Upstream(format!("{what} closed the stream before {}", A::END)));
    }
    Ok(acc.into_reply())
}
