//! Which service manager, if any, runs us: it decides how a restart happens.

use gateway_proto::paths::non_empty_env;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    Systemd,
    Launchd,
    None,
}

impl Supervisor {
    pub fn detect() -> Self {
        if non_empty_env("NOTIFY_SOCKET").is_some() || non_empty_env("INVOCATION_ID").is_some() {
            Self::Systemd
        } else if non_empty_env("XPC_SERVICE_NAME").is_some_and(|v| v != "0") {
            Self::Launchd
        } else {
            Self::None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Systemd => "systemd",
            Self::Launchd => "launchd",
            Self::None => "none",
        }
    }
}
