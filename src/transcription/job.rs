//! The `transcribe` job: decode the recording, plan its pieces once (kept in the database),
//! hear the pieces not heard yet in parallel, each recorded with its usage row as it arrives
//! (so a resumed job never pays for a piece twice), then stitch and commit the transcript
//! with the job's success.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{Options, hear, plan, stitch};
use crate::audio::{Cut, Pcm, Piece};
use crate::db::transcripts::{Finished, HeardPiece, NotRecorded, PieceRow, TranscriptRow};
use crate::db::{JobId, TranscriptId};
use crate::error::ErrorCode;
use crate::jobs::{Handler, JobContext, JobError};
use crate::providers::asr::{Asr, Granularities, Task, Transcript};
use crate::services::Services;
use crate::speech::synth::{ensure_not_canceled, provider_error};
use crate::storage::Key;

pub struct TranscribeJob;

impl Handler<Services> for TranscribeJob {
    fn run(&self, ctx: JobContext<Services>) -> BoxFuture<'static, Result<(), JobError>> {
        run(ctx).boxed()
    }

    fn failed(
        &self,
        ctx: JobContext<Services>,
        error: JobError,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            if let Some(id) = transcript_of(&ctx) {
                ctx.state
                    .db
                    .transcripts()
                    .mark_failed(id, error.code.as_str(), error.message)
                    .await?;
            }
            Ok(())
        }
        .boxed()
    }
}

/// The transcript a job makes, from its payload (`{"transcript": "<id>"}`).
fn transcript_of(ctx: &JobContext<Services>) -> Option<TranscriptId> {
    ctx.job.payload["transcript"].as_str()?.parse().ok()
}

async fn run(ctx: JobContext<Services>) -> Result<(), JobError> {
    let state = &ctx.state;
    let job = ctx.job.id;
    let Some(id) = transcript_of(&ctx) else {
        return Err(JobError::fatal(
            ErrorCode::Internal,
            "A transcription job without a transcript",
        ));
    };
    let Some(row) = state.db.transcripts().get_any(id).await? else {
        // Deleted (with its audio, which does not cancel this job): nothing to make.
        state.db.transcripts().abandon_job(job).await?;
        return Ok(());
    };
    if !row.status.is_live() {
        state.db.transcripts().abandon_job(job).await?;
        return Ok(());
    }
    let provider = state
        .providers
        .resolve_asr(&row.provider)
        .map_err(provider_error)?;
    let pcm = Arc::new(recording(state, &row).await?);
    let pieces = pieces(state, job, &row, provider.as_ref(), &pcm).await?;
    let heard = hear_all(&ctx, &row, provider.clone(), pcm.clone(), pieces).await?;
    let transcript = stitch(&row.model, pcm.duration_ms(), heard);
    commit(state, job, id, transcript).await
}

/// The recording, decoded for recognition: the upload, or the library audio's file.
#[tracing::instrument(skip_all)]
async fn recording(state: &Services, row: &TranscriptRow) -> Result<Pcm, JobError> {
    let key = match (&row.recording_key, row.audio_id) {
        (Some(key), _) => key.clone(),
        (None, Some(audio)) => state
            .db
            .audios()
            .get_any(audio)
            .await?
            .and_then(|a| a.object_key)
            .ok_or_else(|| JobError::fatal(ErrorCode::NotFound, "The audio has no file"))?,
        (None, None) => {
            return Err(JobError::fatal(
                ErrorCode::Internal,
                "A transcript without a recording",
            ));
        }
    };
    let bytes = state
        .storage
        .get(&Key::from_stored(key))
        .await
        .map_err(anyhow::Error::from)?;
    super::decode(bytes).await.map_err(|e| {
        JobError::fatal(
            ErrorCode::UnsupportedMediaType,
            format!("The recording could not be read: {e}"),
        )
    })
}

/// The pieces to hear: those an earlier attempt planned (with what it heard), else a new plan
/// recorded before anything is sent.
#[tracing::instrument(skip_all)]
async fn pieces(
    state: &Services,
    job: JobId,
    row: &TranscriptRow,
    provider: &dyn Asr,
    pcm: &Pcm,
) -> Result<Vec<PieceRow>, JobError> {
    let kept = state.db.transcripts().pieces(row.id).await?;
    if !kept.is_empty() {
        return Ok(kept);
    }
    let planned: Vec<PieceRow> = plan(provider, &row.model, pcm, false)
        .map_err(|e| JobError::fatal(ErrorCode::Internal, e.to_string()))?
        .into_iter()
        .enumerate()
        .map(|(index, p)| PieceRow {
            index,
            start_frame: p.start,
            end_frame: p.end,
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            transcript_json: None,
        })
        .collect();
    state
        .db
        .transcripts()
        .plan(job, row.id, planned.clone(), pcm.duration_ms() as i64)
        .await?
        .map_err(|_| JobError::canceled())?;
    Ok(planned)
}

/// Every piece's transcript with its offset: those heard by an earlier attempt as they were
/// kept, the rest from the provider, in parallel up to its concurrency, each recorded (with
/// its usage row) the moment it arrives. Once the job is asked to stop, or a piece fails, no
/// further piece is sent, but those on their way are waited for and recorded: they are paid.
#[tracing::instrument(skip_all, fields(pieces = pieces.len()))]
async fn hear_all(
    ctx: &JobContext<Services>,
    row: &TranscriptRow,
    provider: Arc<dyn Asr>,
    pcm: Arc<Pcm>,
    pieces: Vec<PieceRow>,
) -> Result<Vec<(u64, Transcript)>, JobError> {
    let total = pieces.len().max(1);
    let done = AtomicUsize::new(
        pieces
            .iter()
            .filter(|p| p.transcript_json.is_some())
            .count(),
    );
    let failed = AtomicBool::new(false);
    let options = Options {
        model: row.model.clone(),
        language: row.language.clone(),
        prompt: None,
        temperature: None,
        task: Task::Transcribe,
        granularities: Granularities::default(),
        speaker_labels: row.speakers,
    };
    let concurrency = provider.max_concurrency().max(1);
    let outcomes: Vec<Result<(u64, Transcript), JobError>> = futures::stream::iter(pieces)
        .map(|kept| {
            let (provider, options, done, failed) = (provider.clone(), &options, &done, &failed);
            let pcm = pcm.clone();
            async move {
                if let Some(json) = &kept.transcript_json {
                    let heard: Transcript =
                        serde_json::from_str(json).map_err(anyhow::Error::from)?;
                    return Ok((kept.start_ms, heard));
                }
                if failed.load(Ordering::SeqCst) {
                    return Err(JobError::canceled());
                }
                ensure_not_canceled(&ctx.cancel)?;
                let heard = match hear_one(ctx, row, provider.as_ref(), options, pcm, &kept).await {
                    Ok(heard) => heard,
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                };
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                let progress = 0.05 + 0.9 * n as f64 / total as f64;
                ctx.state
                    .db
                    .transcripts()
                    .set_progress(row.id, progress)
                    .await?;
                Ok((kept.start_ms, heard))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // The first real failure wins over the pieces it kept from being sent.
    let mut heard = Vec::with_capacity(outcomes.len());
    let mut stopped = None;
    for outcome in outcomes {
        match outcome {
            Ok(piece) => heard.push(piece),
            Err(e) if e.code == ErrorCode::Canceled => stopped = stopped.or(Some(e)),
            Err(e) => return Err(e),
        }
    }
    match stopped {
        Some(e) => Err(e),
        None => Ok(heard),
    }
}

/// Hears one piece and records it with its usage row in one transaction; a job canceled
/// meanwhile records nothing.
async fn hear_one(
    ctx: &JobContext<Services>,
    row: &TranscriptRow,
    provider: &dyn Asr,
    options: &Options,
    pcm: Arc<Pcm>,
    kept: &PieceRow,
) -> Result<Transcript, JobError> {
    let piece = Piece {
        start: kept.start_frame,
        end: kept.end_frame,
        start_ms: kept.start_ms,
        end_ms: kept.end_ms,
        cut: Cut::End,
    };
    let heard = hear(provider, options, pcm, piece).await?;
    let recorded = ctx
        .state
        .db
        .transcripts()
        .finish_piece(
            ctx.job.id,
            row.id,
            row.user_id,
            row.audio_id,
            HeardPiece {
                index: kept.index,
                transcript_json: serde_json::to_string(&heard).map_err(anyhow::Error::from)?,
                usage: super::billed(provider, &piece, &heard),
            },
        )
        .await?;
    match recorded {
        Ok(()) => Ok(heard),
        Err(_) => Err(JobError::canceled()),
    }
}

/// Commit: the whole transcript and the job's success in one transaction (nothing when the
/// transcript was deleted meanwhile).
#[tracing::instrument(skip_all)]
async fn commit(
    state: &Services,
    job: JobId,
    id: TranscriptId,
    transcript: Transcript,
) -> Result<(), JobError> {
    let finished = Finished {
        transcript_json: serde_json::to_string(&transcript).map_err(anyhow::Error::from)?,
        language: transcript.language.clone(),
        duration_ms: (transcript.duration * 1000.0).round() as i64,
    };
    match state.db.transcripts().finish_job(job, id, finished).await? {
        // Deleted through the API: the delete canceled the job too.
        Ok(()) | Err(NotRecorded::JobNotRunning) => Ok(()),
        // Deleted with its audio: the job ends with nothing to record.
        Err(NotRecorded::TranscriptNotWaiting) => {
            Ok(state.db.transcripts().abandon_job(job).await?)
        }
    }
}
