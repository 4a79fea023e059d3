//! `gatewayd`: the gateway daemon. One process owns one port (HTTP, later WebSocket), a Unix
//! control socket for `gatewayctl`, the config reload watcher and the heartbeat loop. Everything
//! runs in the foreground under a supervisor (systemd, launchd) or a terminal; it never forks.

pub mod admin;
pub mod agent;
pub mod auth;
pub mod cli;
pub mod config_write;
pub mod control;
pub mod devices;
pub mod fsutil;
pub mod gateway;
pub mod guard;
pub mod health;
pub mod heartbeat;
pub mod hooks;
pub mod http;
pub mod limiter;
pub mod listen;
pub mod lock;
pub mod logging;
pub mod logtail;
pub mod notify;
pub mod openai;
pub mod providers;
pub mod reload;
pub mod run;
pub mod serve;
pub mod store;
pub mod supervisor;
pub mod tools;
pub mod ws;
