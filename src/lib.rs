//! aimake: a self-hosted AI audio studio in one binary.

pub mod app;
pub mod audio;
pub mod auth;
pub mod backup;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod error_code;
pub mod filemodes;
pub mod gateway;
pub mod http;
pub mod jobs;
pub mod links;
pub mod lockfile;
pub mod models;
pub mod monitor;
pub mod ops;
pub mod pagination;
pub mod patch;
pub mod podcast;
pub mod providers;
pub mod services;
pub mod signing;
pub mod speech;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod transcription;

/// The running build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
