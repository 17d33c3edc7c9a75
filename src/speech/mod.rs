//! The speech engine: turning text into audio through the configured providers.

pub mod chunk;
