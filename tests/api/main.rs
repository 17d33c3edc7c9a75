//! Integration tests: the real server on 127.0.0.1:0 with a temp data dir, talked to over HTTP.

mod accounts;
mod alerts;
mod asr_providers;
mod audios;
mod backup;
mod cli;
#[cfg(unix)]
mod datafiles;
mod deploy;
mod edge;
mod error_reports;
mod fakes;
mod fakes_llm;
mod gateway;
mod health;
mod helpers;
mod jobs;
mod metrics;
mod models;
mod neural;
mod notifiers;
mod openapi;
mod perimeter;
mod podcast_scripts;
mod podcasts;
mod presign;
mod providers;
mod replication;
mod s3;
mod scrubbing;
mod spa;
mod storage;
mod tls;
mod transcriptions;
mod whisper;
