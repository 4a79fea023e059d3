//! The library side of gatewayctl: its command-line definition (for man pages and completions).

pub mod cli;
