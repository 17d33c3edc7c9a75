//! The models on this machine (neural voices and Whisper): where they live, and (in the
//! manager) how they are fetched, verified, imported and removed.

pub mod ggml;
pub mod layout;
pub mod manager;
pub mod manifest;
pub mod service;

pub use layout::{Layout, PiperFiles};
pub use manager::{
    ImportReport, ImportedFile, Manager, ModelError, ModelLock, ModelStatus, PullProgress,
    PullReport, RemoveReport,
};
pub use manifest::{Manifest, ModelEntry, ModelFile, ModelKind};
pub use service::{ModelsService, PullPhase, PullState};
