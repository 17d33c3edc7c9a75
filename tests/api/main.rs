//! Integration tests: the real server on 127.0.0.1:0 with a temp data dir, talked to over HTTP.

mod backup;
mod cli;
mod health;
mod helpers;
mod spa;
mod storage;
