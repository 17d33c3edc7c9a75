//! Podcasts without HTTP: scripts and their parser, the LLM script writer, subtitles, RSS feeds.

pub mod feed;
pub mod llm;
pub mod render;
pub mod script;
pub mod service;
pub mod subtitles;
