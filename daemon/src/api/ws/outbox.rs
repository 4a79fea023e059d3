//! What a connection still has to send, shared by its own task, the tasks answering its
//! requests and the hub's broadcasts. Bytes queued are counted, so a slow consumer is noticed.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use gateway_proto::ws::{ErrorShape, Response};
use serde_json::value::RawValue;

use super::codec::{self, OutFrame};

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// The connection's task, woken when something is queued: a waker slot and a flag rather
    /// than a `Notify`, whose wait would put a waiter node in every idle connection's task.
    task: AtomicWaker,
    queued: AtomicBool,
    /// Set, under the lock, once a close frame is queued: nothing is queued after it. Outside
    /// the lock so that the serving task can look at it without taking the lock.
    closing: AtomicBool,
    /// The task that serves the connection (see [`Self::served_by_this_task`]).
    owner: OnceLock<tokio::task::Id>,
}

#[derive(Default)]
struct State {
    frames: VecDeque<OutFrame>,
    /// How much of the front frame is already written.
    written: usize,
    queued_bytes: usize,
    next_seq: u64,
}

/// What a response's frame is expected to take: its payload, its id and the envelope around them.
fn response_size(id: &str, result: Result<&RawValue, &ErrorShape>) -> usize {
    const ENVELOPE: usize = r#"{"type":"res","id":"","ok":false,"payload":}"#.len();
    id.len() + ENVELOPE + result.map_or(EVENT_SIZE, |payload| payload.get().len())
}

/// The most frames handed to one write.
const WRITE_BATCH: usize = 16;

/// The buffer an event's frame starts with.
const EVENT_SIZE: usize = 256;

fn write_response(out: &mut Vec<u8>, id: &str, result: Result<&RawValue, &ErrorShape>) {
    let response = match result {
        Ok(payload) => Response::ok(id, payload),
        Err(error) => Response::err(id, error),
    };
    serde_json::to_writer(out, &response).expect("responses serialize");
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
    /// Makes the calling task the one that serves the connection: it writes what is queued
    /// before it waits again, so what it queues itself needs no wake-up (which would only
    /// schedule the running task again, and wake an idle worker to steal it), and neither does
    /// what was queued before this call.
    pub fn served_by_this_task(&self) {
        if let Some(id) = tokio::task::try_id() {
            let _ = self.owner.set(id);
        }
        self.queued.store(false, Ordering::Relaxed);
    }

    /// Queues the response to request `id`. Over `limit` queued bytes the connection is closed
    /// with 1008 (slow consumer). Responses take no `seq`: only events count.
    pub fn push_response(
        &self,
        id: &str,
        result: Result<&RawValue, &ErrorShape>,
        limit: usize,
    ) -> Result<(), Refused> {
        let size = response_size(id, result);
        self.push_with(size, |_, out| write_response(out, id, result), false, false, limit)
    }

    /// Queues an event; `write` receives the connection's next `seq` and appends the JSON. Over
    /// the limit, droppable events are skipped and any other closes the connection. A droppable
    /// event skipped for a slow reader still takes its `seq`, so the client sees the gap.
    pub fn push_event(
        &self,
        write: impl FnOnce(u64, &mut Vec<u8>),
        droppable: bool,
        limit: usize,
    ) -> Result<(), Refused> {
        self.push_with(EVENT_SIZE, write, true, droppable, limit)
    }

    fn push_with(
        &self,
        size: usize,
        write: impl FnOnce(u64, &mut Vec<u8>),
        event: bool,
        droppable: bool,
        limit: usize,
    ) -> Result<(), Refused> {
        let mut state = self.lock();
        if self.is_closing() {
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
        let seq = state.next_seq;
        let frame = codec::text(size, |out| write(seq, out));
        state.queued_bytes += frame.size();
        state.frames.push_back(frame);
        drop(state);
        self.wake();
        Ok(())
    }

    /// Queues a close frame; the connection ends once it is written.
    pub fn close(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        if self.is_closing() {
            return;
        }
        self.closing.store(true, Ordering::Release);
        let frame = codec::close(code, reason);
        state.queued_bytes += frame.size();
        state.frames.push_back(frame);
        drop(state);
        self.wake();
    }

    /// Queues a control frame (pong) that does not count as an event.
    pub fn push_raw(&self, frame: OutFrame) {
        let mut state = self.lock();
        if !self.is_closing() {
            state.queued_bytes += frame.size();
            state.frames.push_back(frame);
            drop(state);
            self.wake();
        }
    }

    /// Whether a close frame is queued.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Wakes the serving task, unless this is it.
    fn wake(&self) {
        if self.owner.get().is_some_and(|owner| tokio::task::try_id() == Some(*owner)) {
            return;
        }
        self.queued.store(true, Ordering::Release);
        self.task.wake();
    }

    /// Ready once something was queued since the last time it was.
    pub fn poll_queued(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.task.register(cx.waker());
        if self.queued.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Writes as much as the socket takes without waiting, several frames to a call. Returns
    /// whether all was written (true when nothing was queued).
    pub fn write_some(
        &self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<bool> {
        let mut state = self.lock();
        let State { frames, written, queued_bytes, .. } = &mut *state;
        while !frames.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            let mut offered = 0;
            for (slice, frame) in slices.iter_mut().zip(frames.iter()) {
                let bytes = &frame.bytes()[if offered == 0 { *written } else { 0 }..];
                *slice = IoSlice::new(bytes);
                offered += bytes.len();
            }
            let batch = frames.len().min(WRITE_BATCH);
            let mut taken = match write(&slices[..batch]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            let all_taken = taken == offered;
            while let Some(front) = frames.front() {
                let rest = front.size() - *written;
                if taken < rest {
                    *written += taken;
                    break;
                }
                taken -= rest;
                *queued_bytes -= front.size();
                *written = 0;
                frames.pop_front();
            }
            if !all_taken {
                return Ok(false);
            }
        }
        *frames = VecDeque::new();
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes a call, across however many slices.
    fn take_up_to(
        room: usize,
        sent: &mut Vec<u8>,
    ) -> impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize> + '_ {
        move |slices| {
            let mut taken = 0;
            for slice in slices {
                let n = slice.len().min(room - taken);
                sent.extend_from_slice(&slice[..n]);
                taken += n;
            }
            if taken == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(taken)
        }
    }

    #[test]
    fn frames_go_out_whole_and_in_order_however_the_socket_takes_them() {
        for room in [1, 3, 7, 64, 1 << 20] {
            let outbox = Outbox::default();
            outbox.push_raw(OutFrame::unframed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec()));
            let mut expected = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
            for i in 0..40 {
                let id = i.to_string();
                let payload = serde_json::value::to_raw_value(&i).unwrap();
                outbox.push_response(&id, Ok(&payload), usize::MAX).unwrap();
                expected
                    .extend_from_slice(codec::text(0, |out| write_response(out, &id, Ok(&payload))).bytes());
            }
            let mut sent = Vec::new();
            let mut calls = 0;
            while !outbox.write_some(take_up_to(room, &mut sent)).unwrap() {
                calls += 1;
                assert!(calls < 100_000, "no progress with room {room}");
            }
            assert_eq!(sent, expected, "room {room}");
            assert!(outbox.lock().frames.is_empty());
            assert_eq!(outbox.lock().queued_bytes, 0, "room {room}");
        }
    }

    /// Whether the serving task would be woken now.
    async fn queued(outbox: &Outbox) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(outbox.poll_queued(cx).is_ready())).await
    }

    /// Connections are served on spawned tasks (a test's own body is not one: it has no task id).
    #[tokio::test]
    async fn only_other_tasks_wake_the_serving_task() {
        tokio::spawn(async {
            let outbox = std::sync::Arc::new(Outbox::default());
            outbox.push_raw(OutFrame::unframed(b"before".to_vec()));
            outbox.served_by_this_task();
            assert!(!queued(&outbox).await, "what came before is written at the top of the loop");
            outbox.push_raw(OutFrame::unframed(b"own".to_vec()));
            assert!(!queued(&outbox).await, "the serving task's own frame woke it");
            let other = outbox.clone();
            tokio::spawn(async move { other.push_raw(OutFrame::unframed(b"other".to_vec())) }).await.unwrap();
            assert!(queued(&outbox).await, "another task's frame did not wake the serving task");
            assert_eq!(outbox.lock().frames.len(), 3);
        })
        .await
        .unwrap();
    }

    #[test]
    fn a_full_socket_keeps_everything_queued() {
        let outbox = Outbox::default();
        outbox.push_raw(OutFrame::unframed(b"abc".to_vec()));
        let mut sent = Vec::new();
        assert!(!outbox.write_some(take_up_to(0, &mut sent)).unwrap_or(false));
        assert!(!outbox.lock().frames.is_empty() && sent.is_empty());
    }
}
