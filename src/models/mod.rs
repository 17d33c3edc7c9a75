//! The neural voice models on this machine: where they live, and (in the manager) how they
//! are fetched, verified, imported and removed.

pub mod layout;

pub use layout::{Layout, PiperFiles};
