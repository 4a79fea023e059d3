//! The OpenAI-compatible HTTP APIs on the main port: `/v1/chat/completions`,
//! `/v1/completions`, `/v1/models` and the OpenResponses `/v1/responses`. Same auth as every
//! other authenticated route; errors in the OpenAI shape.

pub mod chunks;
pub mod error;
pub mod openresponses;
pub mod sse;
pub mod wire;
