//! The runtime: agent runs, model providers, tools, paired devices and chat channels. Imports no door, and of
//! the core only its leaf modules (the store, the clock); the `Gateway` value hands it what it
//! needs.

pub mod agent;
pub mod channels;
pub mod devices;
pub mod providers;
pub mod scheduler;
pub mod tools;
