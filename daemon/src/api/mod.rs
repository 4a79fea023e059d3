//! The doors: everything a client talks to. A door never imports another door; what they share
//! is in the plumbing modules below, and the router mounts them all.

// Plumbing every door may use.
pub mod auth;
pub mod body;
pub mod error;
pub mod guard;
pub mod handoff;
pub mod listener;
pub mod scratch;

// The mount point (the one module that imports doors).
pub mod router;

// The doors.
pub mod admin;
pub mod channel_hooks;
pub mod control;
pub mod hooks;
pub mod openai;
pub mod probes;
pub mod signin;
pub mod tools_invoke;
pub mod ui;
pub mod ws;

/// The plumbing modules: any door may import these, and no door may import a door.
pub const PLUMBING: &[&str] = &["auth", "body", "error", "guard", "handoff", "listener", "scratch"];
/// Modules that may import doors.
pub const MOUNTS: &[&str] = &["router"];
