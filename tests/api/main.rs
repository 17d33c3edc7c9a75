//! Integration tests: the real server on 127.0.0.1:0 with a temp data dir, talked to over HTTP.

mod cli;
mod fakes_llm;
mod health;
mod helpers;
mod jobs;
mod podcast_scripts;
mod spa;
mod storage;
