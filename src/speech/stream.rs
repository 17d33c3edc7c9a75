//! Listening while an audio is made: status events until a final state, and the progressive
//! MP3 stream that sends each chunk as soon as it is synthesized.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tracing::Instrument;

use crate::audio::{Format, Mp3Encoder};
use crate::db::audios::AudioRow;
use crate::db::{AudioId, AudioStatus, Db, JobId};
use crate::error::{AppError, Result};
use crate::jobs::events::StatusEvent;
use crate::jobs::{Jobs, StreamGuard};
use crate::services::Services;
use crate::speech::service;
use crate::storage::{Key, Storage, keys};

/// Sample rate of the progressive stream: every provider's output is brought to it.
const STREAM_RATE: u32 = 24_000;

/// How long one progressive stream may last, whatever the job does.
const STREAM_LIMIT: Duration = Duration::from_secs(3600);

/// The events of one audio: `current` first, then every change until a final state (or until
/// the job ends without one reaching us, e.g. when the audio is deleted). Subscribe (`rx`)
/// before reading `current`, so no change between the two is lost.
pub fn status_events(
    mut rx: broadcast::Receiver<StatusEvent>,
    current: StatusEvent,
) -> impl Stream<Item = StatusEvent> {
    channel_stream(move |tx| async move {
        let done = current.is_final();
        if tx.send(current).await.is_err() || done {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let done = ev.is_final();
                    if tx.send(ev).await.is_err() || done {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// What a listener of an audio gets.
pub enum Listen<S> {
    /// The audio is a finished MP3: its file is the whole stream.
    File,
    /// MP3 bytes (24 kHz mono, 64 kbps) as the job synthesizes them.
    Live(S),
}

/// The stream of audio `id` (its row `audio`, already authorized): live while it is queued or
/// running, its file once it is a finished MP3, a conflict otherwise.
pub async fn listen(
    db: &Db,
    storage: &Storage,
    jobs: &Arc<Jobs<Services>>,
    id: AudioId,
    audio: &AudioRow,
) -> Result<Listen<impl Stream<Item = std::io::Result<Bytes>> + Send + use<>>> {
    let job = db.jobs().live_for_audio(id).await?;
    let job = match (job, audio.status) {
        (Some(job), AudioStatus::Queued | AudioStatus::Running) => job,
        (_, AudioStatus::Succeeded) if audio.format == "mp3" => return Ok(Listen::File),
        _ => {
            return Err(AppError::Conflict(format!(
                "The audio is {}; there is nothing to stream",
                audio.status
            )));
        }
    };
    let guard = jobs.streams.open(job);
    let (db, storage, jobs) = (db.clone(), storage.clone(), jobs.clone());
    Ok(Listen::Live(channel_stream(move |tx| {
        progressive(db, storage, jobs, id, job, guard, tx)
    })))
}

/// A small channel-backed stream: the producer runs as its own task, in the caller's span.
pub(crate) fn channel_stream<T, F, Fut>(producer: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(producer(tx).in_current_span());
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The audio, or None when it is gone (or cannot be read now).
async fn get_any(db: &Db, id: AudioId) -> Option<AudioRow> {
    service::find(db, id).await.ok().flatten()
}

/// Whether the audio is gone or its job is over.
async fn finished(db: &Db, id: AudioId) -> bool {
    !get_any(db, id).await.is_some_and(|a| a.status.is_live())
}

async fn progressive(
    db: Db,
    storage: Storage,
    jobs: Arc<Jobs<Services>>,
    audio: AudioId,
    job: JobId,
    guard: StreamGuard,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
) {
    let mut events = jobs.events.subscribe(audio);
    let mut encoder = Mp3Encoder::new(STREAM_RATE, 1, 64).ok();
    let mut next = 0usize;
    let mut total: Option<usize> = None;
    let deadline = tokio::time::Instant::now() + STREAM_LIMIT;
    while encoder.is_some()
        && total.is_none_or(|t| next < t)
        && tokio::time::Instant::now() < deadline
    {
        if total.is_none()
            && let Ok(b) = storage.get(&keys::job_parts(job)).await
        {
            total = serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v["total"].as_u64())
                .map(|t| t as usize);
        }
        let listed = storage
            .list(&keys::job_prefix(job))
            .await
            .unwrap_or_default();
        let wanted = format!("chunk-{next:05}.");
        if let Some(obj) = listed.iter().find(|o| {
            o.key
                .as_str()
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(&wanted))
        }) {
            let Ok(bytes) = storage.get(&obj.key).await else {
                break;
            };
            let format = crate::speech::synth::format_of(obj.key.as_str());
            let enc = encoder.take().expect("checked above");
            let Ok((enc, out)) = reencode(enc, bytes, format).await else {
                break;
            };
            encoder = Some(enc);
            if tx.send(Ok(Bytes::from(out))).await.is_err() {
                break;
            }
            next += 1;
            continue;
        }
        // The job is over and the chunk is not there: nothing more will come.
        if finished(&db, audio).await {
            break;
        }
        // Wait for the next chunk: progress events announce them; the timer covers the rest.
        tokio::select! {
            _ = events.recv() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    // A one-chunk text keeps no chunks (see `speech::job`): when it finished before anything
    // was streamed, its file is the whole stream.
    if next == 0
        && let Some(enc) = encoder.take()
    {
        let file = match get_any(&db, audio).await {
            Some(row) if row.status == AudioStatus::Succeeded => row.object_key,
            _ => None,
        };
        let bytes = match &file {
            Some(key) => storage.get(&Key::from_stored(key.clone())).await.ok(),
            None => None,
        };
        encoder = match (file, bytes) {
            (Some(key), Some(bytes)) => {
                let format = crate::speech::synth::format_of(&key);
                match reencode(enc, bytes, format).await {
                    Ok((enc, out)) => tx.send(Ok(Bytes::from(out))).await.is_ok().then_some(enc),
                    Err(_) => None,
                }
            }
            _ => Some(enc),
        };
    }
    if let Some(enc) = encoder {
        let mut out = Vec::new();
        if enc.finish(&mut out).is_ok() && !out.is_empty() {
            let _ = tx.send(Ok(Bytes::from(out))).await;
        }
    }
    // The job left its chunks for us; the last reader of a finished job removes them.
    if guard.release() && finished(&db, audio).await {
        let _ = storage.delete_prefix(&keys::job_prefix(job)).await;
    }
}

/// One part of the progressive stream: decoded, brought to the stream's rate and encoded
/// with the stream's encoder (handed back, since it carries the stream's state).
async fn reencode(
    mut enc: Mp3Encoder,
    bytes: Bytes,
    format: Format,
) -> std::result::Result<(Mp3Encoder, Vec<u8>), tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let pcm = crate::audio::decode(&bytes, format)
            .and_then(|p| crate::audio::conform(p, STREAM_RATE, 1));
        if let Ok(pcm) = pcm {
            let _ = enc.encode(&pcm.samples, &mut out);
        }
        (enc, out)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn event(status: &str) -> StatusEvent {
        StatusEvent {
            status: status.parse().unwrap(),
            progress: 0.0,
            error: None,
        }
    }

    #[tokio::test]
    async fn status_events_end_at_the_first_final_state() {
        let (tx, rx) = broadcast::channel(8);
        let events = status_events(rx, event("queued"));
        for status in ["running", "succeeded", "running"] {
            tx.send(event(status)).unwrap();
        }
        let seen: Vec<String> = events.map(|e| e.status.to_string()).collect().await;
        assert_eq!(seen, ["queued", "running", "succeeded"]);
    }

    #[tokio::test]
    async fn a_final_current_state_is_the_only_event() {
        let (_tx, rx) = broadcast::channel(8);
        let seen: Vec<StatusEvent> = status_events(rx, event("failed")).collect().await;
        assert_eq!(seen.len(), 1);
        assert!(seen[0].is_final());
    }
}
