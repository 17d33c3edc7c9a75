//! aimake: a self-hosted AI audio studio in one binary.

pub mod app;
pub mod backup;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod lockfile;
pub mod ops;
pub mod storage;
pub mod telemetry;
