//! The core: the `Gateway` value and what keeps it serving. Imports no door (`crate::api`).

pub mod admin_policy;
pub mod events;
pub mod fsutil;
pub mod gateway;
pub mod health;
pub mod heartbeat;
pub mod json_log;
pub mod limiter;
pub mod lock;
pub mod logging;
pub mod logtail;
pub mod metrics;
pub mod notify;
pub mod openai_stats;
pub mod password;
pub mod port;
pub mod reload;
pub mod secrets;
pub mod secrets_audit;
pub mod signin_store;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod ui_codes;
pub mod webhooks;
