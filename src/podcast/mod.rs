//! Podcasts without HTTP: scripts and their parser, the script writer (prompts for the language
//! model client in `providers`), subtitles, RSS feeds.

pub mod feed;
pub mod llm;
pub mod render;
pub mod script;
pub mod service;
pub mod subtitles;
