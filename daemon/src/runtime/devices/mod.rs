//! Device identity: clients prove a stable Ed25519 identity in `connect`; devices are paired
//! (automatically on loopback, by approval otherwise) and get a device token and scopes.

pub mod proof;
mod recent;
pub mod registry;
pub mod token;

pub use registry::{DeviceError, DeviceRecord, Devices, Pairing, PairingRequest};
pub use token::TokenKey;
