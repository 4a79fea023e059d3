//! The library side of gatewayctl: its command-line definition (for man pages and completions)
//! and the service files `install` renders (for packaging and the tests of those files).

pub mod cli;
pub mod units;
