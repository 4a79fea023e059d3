//! Exit codes are an interface: supervisors and scripts act on them (see `docs/exit-codes.md`).

/// Success.
pub const OK: i32 = 0;
/// A runtime failure not covered below.
pub const FAILURE: i32 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: i32 = 2;
/// `gatewayctl`: the daemon is not running or does not answer on its control socket.
pub const NOT_RUNNING: i32 = 3;
/// A resource is held by someone else: the port, or the instance lock of the state dir.
pub const UNAVAILABLE: i32 = 69;
/// `gatewayd`: the disk holding the state dir is full (EX_IOERR). The units list it in
/// `RestartPreventExitStatus=`: restarting cannot free space, so it is not a loop to spin in.
pub const DISK_FULL: i32 = 74;
/// `gatewayd`: exiting so that the supervisor starts it again with a changed config
/// (a restart-required key changed while supervised). The unit restarts on it.
pub const RESTART: i32 = 75;
/// Configuration error (EX_CONFIG). The systemd unit lists it in `RestartPreventExitStatus=`
/// so that a broken config does not become a restart loop.
pub const CONFIG: i32 = 78;
