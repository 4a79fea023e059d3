//! One module per group of commands. Each command returns the exit code it ends with; errors
//! carry theirs (see `main`).

pub mod config_cmd;
pub mod devices;
pub mod lifecycle;
pub mod logs;
pub mod password;
pub mod sessions;
pub mod status;
pub mod token;

use anyhow::Context;
use gateway_proto::paths::PathFlags;
use gateway_proto::{Paths, Profile};

use crate::client::Client;

/// What every command knows: which instance it is about.
pub struct Ctx {
    pub profile: Profile,
}

impl Ctx {
    /// Resolved on demand: `config schema` and `config validate FILE` work without a home dir.
    pub fn paths(&self) -> anyhow::Result<Paths> {
        Paths::resolve(&self.profile, &PathFlags::default()).context("cannot find gatewayd's files")
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.paths()?.socket(), self.profile.clone()))
    }
}
