//! The write gates of `gateway.admin`: whatever a caller's credentials or scopes, a gateway can
//! refuse session writes (append, reset, delete) and memory writes. Every door that writes
//! sessions or notes asks here: the admin routes and the WebSocket methods alike.

use gateway_config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    SessionWrite,
    MemoryWrite,
}

impl Gate {
    /// The key under `gateway.admin`, which is also the value Tau's clients name in `policy_gate`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionWrite => "allow_session_write",
            Self::MemoryWrite => "allow_memory_write",
        }
    }

    /// Ok when the config lets these writes through; otherwise the refusal, in words.
    pub fn check(self, config: &Config) -> Result<(), String> {
        let admin = &config.gateway.admin;
        let open = match self {
            Self::SessionWrite => admin.allow_session_write,
            Self::MemoryWrite => admin.allow_memory_write,
        };
        if open {
            Ok(())
        } else {
            Err(format!(
                "this gateway refuses these writes: gateway.admin.{} is false in its config (set it to true to allow them)",
                self.name()
            ))
        }
    }
}
