//! One module per group of commands. Each command returns the exit code it ends with; errors
//! carry theirs (see `main`).

pub mod channels;
pub mod config_cmd;
pub mod cron;
pub mod dashboard;
pub mod deep;
pub mod devices;
pub mod doctor;
pub mod journal;
pub mod lifecycle;
pub mod logs;
pub mod password;
pub mod remote;
pub mod secrets;
pub mod service_cmd;
pub mod signins;
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

    /// The state dir, created private (0700) if missing, for files written while gatewayd is
    /// not running.
    pub fn private_state_dir(&self) -> anyhow::Result<Paths> {
        use std::os::unix::fs::DirBuilderExt;
        let paths = self.paths()?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&paths.state_dir)
            .with_context(|| format!("cannot create the state dir {}", paths.state_dir.display()))?;
        Ok(paths)
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(self.paths()?.socket(), self.profile.clone()))
    }
}
