//! The WebSocket control protocol on the main port (OpenClaw gateway protocol v4 on the wire):
//! framing, the upgrade, one task per connection, the hub that fans events out, the handshake
//! and the methods.

pub mod chat;
pub mod codec;
mod conn;
pub mod handshake;
pub mod hub;
pub mod methods;
pub mod outbox;
pub mod upgrade;

pub use hub::Hub;
