//! The speech engine: the rule for text to speak, library operations, the synthesis job, the
//! synthesis toolkit every job shares, and long-text chunking.

pub mod chunk;
pub mod job;
pub mod preview;
pub mod service;
pub mod stream;
pub mod synth;
pub mod text;
