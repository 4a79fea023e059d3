//! End-to-end tests: the real gatewayd and gatewayctl, in temp homes, on free ports.

mod admin_api;
mod auth_modes;
mod chat_durability;
mod chat_ws;
mod control;
mod devices;
mod disk_full;
mod hooks;
mod lifecycle;
mod llama;
mod notify;
mod openai_api;
mod openai_sdk;
mod openclaw_cli;
mod openclaw_node;
mod packaging;
mod providers;
mod reload;
mod responses_api;
mod responses_items;
mod startup;
mod supervision;
mod systemd;
mod tools;
mod ws_protocol;
mod ws_security;
