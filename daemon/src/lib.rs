//! `gatewayd`: the gateway daemon. One process owns one port (HTTP and WebSocket), a Unix
//! control socket for `gatewayctl`, the config reload watcher and the heartbeat loop. Everything
//! runs in the foreground under a supervisor (systemd, launchd) or a terminal; it never forks.
//!
//! The code is in three layers (docs/architecture.md), and a test (`layers` below) keeps them:
//! - `core/`: the `Gateway` value, the config snapshot and its reload transaction, the status
//!   model, health, heartbeat, limiters, the instance lock, the SQLite stores, sd-notify, and the
//!   event bus. **It imports no door.** It tells the doors what happened by publishing
//!   `core::events::CoreEvent`s; it never closes a socket or starts a door's task itself.
//! - `runtime/`: the work the gateway does: agent runs, model providers, tools, paired devices.
//!   **It imports no door**, and of the core only its leaf modules (the store, the clock), never
//!   the `Gateway` value: what a runtime part needs is handed to it.
//! - `api/`: the doors (the HTTP router and listener checks, the control socket, `ws/`,
//!   `openai/`, `hooks/`, admin routes, `/tools/invoke`, sign-in). **A door never imports another
//!   door**; what they share (authentication, the client's address, refusals, the error type, the
//!   connection loop) lives in `api`'s plumbing modules, listed in `api/mod.rs`.
//!
//! `startup` and `cli` sit above the layers: they build the core, the runtime and the doors in
//! order and wire them together.

pub mod api;
pub mod cli;
pub mod core;
pub mod runtime;
pub mod startup;

#[cfg(test)]
mod layers;
