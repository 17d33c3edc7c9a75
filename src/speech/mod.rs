//! The speech engine: library operations, the synthesis job, and long-text chunking.

pub mod chunk;
pub mod job;
pub mod service;
