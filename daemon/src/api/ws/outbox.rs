//! What a connection still has to send, shared by its own task, the tasks answering its
//! requests and the hub's broadcasts. Bytes queued are counted, so a slow consumer is noticed.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

use super::codec;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    /// How much of the front frame is already written.
    written: usize,
    queued_bytes: usize,
    next_seq: u64,
    /// Set once a close frame is queued: nothing is queued after it.
    closing: Option<u16>,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Closing,
    /// The queue is over the limit; a droppable event was skipped.
    Dropped,
    /// The queue is over the limit and the frame must not be lost: the connection is being
    /// closed as a slow consumer.
    SlowConsumer,
}

impl Outbox {
    /// Queues a text frame. Over `limit` queued bytes, droppable frames are skipped and any other
    /// closes the connection with 1008.
    /// Responses do not take a `seq`: only events count.
    pub fn push_text(&self, json: &[u8], droppable: bool, limit: usize) -> Result<(), Refused> {
        self.push_with(|_| json.to_vec(), false, droppable, limit)
    }

    /// Queues an event; `build` receives the connection's next `seq` and returns the JSON. A
    /// droppable event skipped for a slow reader still takes its `seq`, so the client sees the gap.
    pub fn push_event(
        &self,
        build: impl FnOnce(u64) -> Vec<u8>,
        droppable: bool,
        limit: usize,
    ) -> Result<(), Refused> {
        self.push_with(build, true, droppable, limit)
    }

    fn push_with(
        &self,
        build: impl FnOnce(u64) -> Vec<u8>,
        event: bool,
        droppable: bool,
        limit: usize,
    ) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closing.is_some() {
            return Err(Refused::Closing);
        }
        if state.queued_bytes > limit {
            if droppable {
                state.next_seq += u64::from(event);
                return Err(Refused::Dropped);
            }
            drop(state);
            self.close(gateway_proto::ws::close::POLICY, "slow consumer: too many unsent bytes");
            return Err(Refused::SlowConsumer);
        }
        state.next_seq += u64::from(event);
        let frame = codec::text(&build(state.next_seq));
        state.queued_bytes += frame.len();
        state.frames.push_back(Bytes::from(frame));
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a close frame; the connection ends once it is written.
    pub fn close(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        if state.closing.is_some() {
            return;
        }
        state.closing = Some(code);
        let frame = codec::close(code, reason);
        state.queued_bytes += frame.len();
        state.frames.push_back(Bytes::from(frame));
        drop(state);
        self.wake.notify_one();
    }

    /// Queues a control frame (pong) that does not count as an event.
    pub fn push_raw(&self, frame: Vec<u8>) {
        let mut state = self.lock();
        if state.closing.is_none() {
            state.queued_bytes += frame.len();
            state.frames.push_back(Bytes::from(frame));
            drop(state);
            self.wake.notify_one();
        }
    }

    pub fn closing(&self) -> Option<u16> {
        self.lock().closing
    }

    pub fn has_pending(&self) -> bool {
        !self.lock().frames.is_empty()
    }

    /// Resolves when something new was queued.
    pub async fn queued(&self) {
        self.wake.notified().await;
    }

    /// Writes as much as the socket takes without waiting. Returns whether all was written.
    pub fn write_some(
        &self,
        mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<bool> {
        let mut state = self.lock();
        while let Some(front) = state.frames.front().cloned() {
            let rest = &front[state.written..];
            match write(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) if n == rest.len() => {
                    state.frames.pop_front();
                    state.written = 0;
                    state.queued_bytes -= front.len();
                }
                Ok(n) => {
                    state.written += n;
                    return Ok(false);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        state.frames = VecDeque::new();
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
