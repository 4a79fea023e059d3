//! End-to-end tests: the real gatewayd and gatewayctl, in temp homes, on free ports.

mod auth_modes;
mod chat_durability;
mod chat_ws;
mod control;
mod devices;
mod lifecycle;
mod notify;
mod openclaw_node;
mod providers;
mod reload;
mod startup;
mod tools;
mod ws_protocol;
mod ws_security;
