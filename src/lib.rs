//! aimake: a self-hosted AI audio studio in one binary.

pub mod app;
pub mod audio;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod speech;
pub mod storage;
pub mod telemetry;
