//! Device identity: clients prove a stable Ed25519 identity in `connect`; devices are paired
//! (automatically on loopback, by approval otherwise) and get a device token and scopes.

pub mod proof;
pub mod registry;

pub use registry::{DeviceError, DeviceRecord, Devices, Pairing, PairingRequest};
