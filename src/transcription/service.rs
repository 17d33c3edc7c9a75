//! Transcripts in the library: create one for an uploaded recording or a library audio, list,
//! read, download and delete them. Nothing here knows about HTTP.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use super::TRANSCRIBE_JOB;
use crate::audio::{self, Format};
use crate::db::transcripts::{ListFilter, NewTranscript, TranscriptRow};
use crate::db::{AudioId, AudioStatus, JobId, TranscriptId, TranscriptStatus, UserId};
use crate::error::{AppError, ErrorCode, Result};
use crate::jobs::NewJob;
use crate::jobs::events::ErrorInfo;
use crate::providers::asr::{ASR_PROVIDER_IDS, Asr, Transcript};
use crate::services::Services;
use crate::storage::{Key, keys};

/// Attempts before a transcription is marked failed (each attempt already retries inside the
/// provider, and a resumed attempt repeats no heard piece).
const MAX_ATTEMPTS: u32 = 3;
/// Titles are the upload's file name cut to this many characters.
const TITLE_CHARS: usize = 200;

/// What to transcribe.
pub enum Source {
    /// A recording sent with the request, and the name it was sent under.
    Upload {
        bytes: Bytes,
        file_name: Option<String>,
    },
    /// An audio of the caller's library.
    Audio(AudioId),
}

/// The request's choices; each may be left out.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// `openai`, `elevenlabs` or `tencent`; else `transcription.provider`, else the first
    /// enabled.
    pub provider: Option<String>,
    /// The provider's own model; else its default.
    pub model: Option<String>,
    /// ISO 639-1 of the speech (`en`, `zh`); else the provider detects it.
    pub language: Option<String>,
    /// Tell speakers apart, where the provider can.
    pub speakers: bool,
}

/// The transcript object of docs/api.md.
#[derive(Debug, Clone, Serialize)]
pub struct TranscriptView {
    pub id: TranscriptId,
    pub title: String,
    /// `upload` or `audio`.
    pub source: &'static str,
    pub audio_id: Option<AudioId>,
    pub status: TranscriptStatus,
    pub progress: f64,
    pub provider: String,
    pub model: String,
    pub language: Option<String>,
    pub speakers: bool,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub error: Option<ErrorInfo>,
    /// Where the recording plays from: the upload, or the library audio's file.
    pub recording_url: String,
    /// The downloads, once the transcript is done: `json`, `srt`, `vtt`, `txt`.
    pub downloads: Option<serde_json::Value>,
    /// The transcript itself, when one transcript is read and it is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Transcript>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TranscriptRow> for TranscriptView {
    fn from(r: TranscriptRow) -> Self {
        let error = match (r.error_code, r.error_message) {
            (Some(code), message) if r.status == TranscriptStatus::Failed => Some(ErrorInfo {
                code,
                message: message.unwrap_or_default(),
            }),
            _ => None,
        };
        let base = format!("/api/transcriptions/{}", r.id);
        Self {
            recording_url: match r.audio_id {
                Some(audio) => format!("/api/audios/{audio}/file"),
                None => format!("{base}/recording"),
            },
            downloads: (r.status == TranscriptStatus::Succeeded).then(|| {
                json!({
                    "json": format!("{base}.json"),
                    "srt": format!("{base}.srt"),
                    "vtt": format!("{base}.vtt"),
                    "txt": format!("{base}.txt"),
                })
            }),
            source: if r.audio_id.is_some() {
                "audio"
            } else {
                "upload"
            },
            id: r.id,
            title: r.title,
            audio_id: r.audio_id,
            status: r.status,
            progress: r.progress,
            provider: r.provider,
            model: r.model,
            language: r.language,
            speakers: r.speakers,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            error,
            transcript: None,
            created_at: crate::db::to_rfc3339(r.created_at),
            updated_at: crate::db::to_rfc3339(r.updated_at),
        }
    }
}

/// The speech recognition provider a request names, or the configured or first enabled one.
/// A name that is no provider is the caller's mistake (400); a provider switched off is
/// unavailable (503, saying what would switch it on).
pub fn provider(state: &Services, named: Option<&str>, field: &str) -> Result<Arc<dyn Asr>> {
    let named = named
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .or_else(|| Some(state.config.transcription.provider.as_str()).filter(|p| !p.is_empty()));
    match named {
        Some(id) if !ASR_PROVIDER_IDS.contains(&id) => Err(AppError::field(
            ErrorCode::InvalidRequest,
            field,
            format!(
                "`{id}` is no speech recognition provider; use one of {}",
                ASR_PROVIDER_IDS.join(", ")
            ),
        )),
        Some(id) => Ok(state.providers.resolve_asr(id)?),
        None => first_enabled(state),
    }
}

/// The first enabled speech recognition provider that is ready (remote ones first, then the
/// engine on this machine once a model is installed); 503 when none is.
pub fn first_enabled(state: &Services) -> Result<Arc<dyn Asr>> {
    state
        .providers
        .asr_enabled()
        .next()
        .cloned()
        .ok_or_else(|| AppError::Unavailable {
            code: ErrorCode::ProviderUnavailable,
            message: "No speech recognition provider is enabled: run `aimake models pull \
                      whisper:base` to transcribe on this machine, or set \
                      providers.openai.api_key (or asr_base_url), providers.elevenlabs.api_key, \
                      or the Tencent keys"
                .into(),
        })
}

/// A language as requests give it: ISO 639-1 or -3, optionally with a region (`en`, `yue`,
/// `zh-CN`); kept lower-case.
pub fn language(value: Option<&str>, field: &str) -> Result<Option<String>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let (primary, region) = match value.split_once(['-', '_']) {
        Some((primary, region)) => (primary, Some(region)),
        None => (value, None),
    };
    let ok = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && region.is_none_or(|r| {
            (2..=8).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            field,
            format!("`{value}` is not a language code like en, zh or pt-BR"),
        ));
    }
    Ok(Some(value.to_ascii_lowercase()))
}

/// Checks the request, stores the upload (if any) and the queued transcript with its job.
/// Nothing is stored when anything is refused.
pub async fn create(
    state: &Services,
    user: UserId,
    source: Source,
    choices: Choices,
) -> Result<TranscriptRow> {
    let provider = provider(state, choices.provider.as_deref(), "provider")?;
    let model = match choices.model.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => {
            if m.chars().count() > 200 || m.chars().any(char::is_control) {
                return Err(AppError::field(
                    ErrorCode::InvalidRequest,
                    "model",
                    "A model name has 1 to 200 characters",
                ));
            }
            m.to_string()
        }
        _ => provider.model().to_string(),
    };
    let language = language(choices.language.as_deref(), "language")?;
    if choices.speakers && !provider.capabilities(&model).speaker_labels {
        return Err(AppError::field(
            ErrorCode::InvalidRequest,
            "speakers",
            format!(
                "{} cannot tell speakers apart with {model}",
                crate::providers::display_name(provider.id())
            ),
        ));
    }
    state.auth.ensure_quota_left(user, "transcription").await?;

    let id = TranscriptId::new(&state.db);
    let mut transcript = NewTranscript {
        id,
        user_id: user,
        audio_id: None,
        recording_key: None,
        recording_format: None,
        title: String::new(),
        provider: provider.id().to_string(),
        model,
        language,
        speakers: choices.speakers,
        size_bytes: None,
    };
    let stored = match source {
        Source::Upload { bytes, file_name } => {
            let format = readable(&bytes).await?;
            let key = keys::recording(user, id, format.extension());
            transcript.title = title_of(file_name.as_deref());
            transcript.recording_key = Some(key.as_str().to_string());
            transcript.recording_format = Some(format.extension().to_string());
            transcript.size_bytes = Some(bytes.len() as i64);
            state.storage.put(&key, bytes).await?;
            Some(key)
        }
        Source::Audio(audio) => {
            let row = state
                .db
                .audios()
                .get(user, audio)
                .await?
                .ok_or(AppError::NotFound)?;
            if row.status != AudioStatus::Succeeded || row.object_key.is_none() {
                return Err(AppError::Conflict(format!(
                    "The audio is {}; only finished audios can be transcribed",
                    row.status
                )));
            }
            transcript.title = row.title;
            transcript.audio_id = Some(audio);
            transcript.size_bytes = row.size_bytes;
            None
        }
    };
    let job = NewJob {
        id: JobId::new(&state.db),
        kind: TRANSCRIBE_JOB,
        user_id: Some(user),
        audio_id: None,
        payload: json!({ "transcript": id }),
        max_attempts: MAX_ATTEMPTS,
    };
    let row = match state.db.transcripts().create(transcript, job).await {
        Ok(row) => row,
        Err(e) => {
            if let Some(key) = stored {
                // The upload belongs to nothing now.
                let _ = state.storage.delete(&key).await;
            }
            return Err(e.into());
        }
    };
    state.jobs.notify();
    Ok(row)
}

/// The container of an upload, once the whole of it decodes; otherwise the 400 naming the
/// formats read. Only the length is kept while it is read, never the samples.
async fn readable(bytes: &Bytes) -> Result<Format> {
    let format =
        Format::sniff(bytes).ok_or_else(|| super::unreadable(&audio::AudioError::Unsupported))?;
    let copy = bytes.clone();
    let probe = tokio::task::spawn_blocking(move || audio::probe(&copy, format))
        .await
        .map_err(anyhow::Error::from)?;
    match probe {
        Ok(p) if p.duration_ms > 0 => Ok(format),
        Ok(_) => Err(super::unreadable(&super::silent(format.extension()))),
        Err(e) => Err(super::unreadable(&e)),
    }
}

/// The upload's file name without its extension, as a title.
fn title_of(file_name: Option<&str>) -> String {
    let name = file_name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n))
        .map(|n| n.rsplit_once('.').map_or(n, |(stem, _)| stem))
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .unwrap_or_default();
    let name = name.trim();
    if name.is_empty() {
        return "Recording".into();
    }
    name.chars().take(TITLE_CHARS).collect()
}

pub async fn get(state: &Services, user: UserId, id: TranscriptId) -> Result<TranscriptRow> {
    state
        .db
        .transcripts()
        .get(user, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// The caller's transcript with what was heard, once it is done.
pub async fn read(state: &Services, user: UserId, id: TranscriptId) -> Result<TranscriptView> {
    let (row, json) = state
        .db
        .transcripts()
        .get_with_json(user, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut view = TranscriptView::from(row);
    view.transcript = json.as_deref().map(parse).transpose()?;
    Ok(view)
}

fn parse(json: &str) -> Result<Transcript> {
    Ok(serde_json::from_str(json).map_err(anyhow::Error::from)?)
}

/// One page of the caller's transcripts, newest first: those with words of `filter.q` in
/// their text, of the audio `filter.audio` (none when it is someone else's).
pub async fn list(
    state: &Services,
    user: UserId,
    filter: ListFilter,
    before: Option<TranscriptId>,
    fetch: usize,
) -> Result<Vec<TranscriptRow>> {
    Ok(state
        .db
        .transcripts()
        .page(user, filter, before, fetch)
        .await?)
}

/// What a transcript downloads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    Json,
    Srt,
    Vtt,
    Txt,
}

impl Download {
    pub const NAMES: [&'static str; 4] = ["json", "srt", "vtt", "txt"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "json" => Self::Json,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "txt" => Self::Txt,
            _ => return None,
        })
    }

    pub fn extension(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
            Self::Txt => "text/plain; charset=utf-8",
        }
    }
}

/// A finished transcript as a file: the row (for its title) and the bytes. 409 before it is done.
pub async fn download(
    state: &Services,
    user: UserId,
    id: TranscriptId,
    format: Download,
) -> Result<(TranscriptRow, String)> {
    let (row, json) = state
        .db
        .transcripts()
        .get_with_json(user, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let Some(json) = json else {
        return Err(AppError::Conflict(format!(
            "The transcript is {}; it can be downloaded once it succeeded",
            row.status
        )));
    };
    let transcript = parse(&json)?;
    let body = match format {
        Download::Json => json,
        Download::Srt => super::render::srt(&transcript),
        Download::Vtt => super::render::vtt(&transcript),
        Download::Txt => super::render::text(&transcript),
    };
    Ok((row, body))
}

/// The uploaded recording's object and MIME type; 404 for a transcript of a library audio
/// (its recording is the audio's file).
pub fn recording(row: &TranscriptRow) -> Result<(Key, &'static str)> {
    let key = row.recording_key.clone().ok_or(AppError::NotFound)?;
    let mime = row
        .recording_format
        .as_deref()
        .and_then(Format::from_extension)
        .map_or("application/octet-stream", Format::mime_type);
    Ok((Key::from_stored(key), mime))
}

/// Deletes a transcript and its upload, and stops its job. Deleting one that is already gone
/// succeeds.
pub async fn delete(state: &Services, user: UserId, id: TranscriptId) -> Result<()> {
    let Some(deleted) = state.db.transcripts().delete(user, id).await? else {
        return Ok(());
    };
    if let Some(job) = deleted.job {
        state.jobs.cancel(job);
    }
    if let Some(key) = deleted.recording_key {
        state.storage.delete(&Key::from_stored(key)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_the_file_name_without_folders_or_extension() {
        assert_eq!(
            title_of(Some("C:\\talks\\Keynote 2026.m4a")),
            "Keynote 2026"
        );
        assert_eq!(title_of(Some("/tmp/a.b.mp3")), "a.b");
        assert_eq!(title_of(Some("  ")), "Recording");
        assert_eq!(title_of(None), "Recording");
        assert_eq!(title_of(Some(&"x".repeat(300))).chars().count(), 200);
    }

    #[test]
    fn languages_are_codes_with_an_optional_region() {
        assert_eq!(
            language(Some("EN"), "language").unwrap().as_deref(),
            Some("en")
        );
        assert_eq!(
            language(Some("pt-BR"), "language").unwrap().as_deref(),
            Some("pt-br")
        );
        assert_eq!(language(Some(""), "language").unwrap(), None);
        for bad in ["english", "e", "en-", "en_a!", "中文"] {
            let e = language(Some(bad), "language").unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn downloads_are_named_by_their_extension() {
        for name in Download::NAMES {
            assert_eq!(Download::parse(name).unwrap().extension(), name);
        }
        assert_eq!(Download::parse("pdf"), None);
    }
}
