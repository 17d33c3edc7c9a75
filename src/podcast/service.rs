//! Podcast operations without HTTP: shows, scripts (pasted or written by the LLM), episodes
//! queued for rendering, their subtitles, and the RSS feed.

use serde::{Deserialize, Serialize};
use serde_json::json;
use ulid::Ulid;

use super::feed::{self, Item, Show};
use super::llm::{LlmError, ScriptRequest, ScriptWriter, Source, SpeakerBrief};
use super::script::{FlatLine, FlatScript, ScriptLimits, parse_dialogue};
use super::subtitles::{self, TimedChapter, TimedLine};
use crate::auth::secret;
use crate::db::audios::{self, AudioRow, NewAudio};
use crate::db::episodes::{self, EpisodeRow, NewEpisode};
use crate::db::jobs as queue;
use crate::db::podcasts::{self, Changes, PodcastRow};
use crate::db::usage::{self, NewUsage};
use crate::db::{now_ms, to_rfc3339};
use crate::error::{AppError, Result};
use crate::jobs::NewJob;
use crate::pagination::{Page, PageRequest};
use crate::services::Services;
use crate::speech::service::AudioView;
use crate::storage::{Key, StorageError, keys};

/// The job kind that renders an episode.
pub const PODCAST_JOB: &str = "podcast";
const MAX_ATTEMPTS: u32 = 3;
const MAX_DESCRIPTION_CHARS: usize = 4000;
const DEFAULT_PAUSE_MS: u32 = 350;
const MAX_PAUSE_MS: u32 = 5000;
/// Feed links must keep working in podcast apps for as long as anyone listens.
const FEED_LINK_S: i64 = 10 * 365 * 86_400;
/// Signature purposes of the feed's links: episode audio, transcript, chapters and cover.
pub const EPISODE_AUDIO_PURPOSE: &str = "episode-audio";
pub const TRANSCRIPT_PURPOSE: &str = "transcript";
pub const CHAPTERS_PURPOSE: &str = "chapters";
pub const COVER_PURPOSE: &str = "cover";
/// Podcast apps ask for square artwork of a few hundred KiB; 1 MiB leaves room.
pub const MAX_COVER_BYTES: usize = 1024 * 1024;
const MAX_CATEGORY_CHARS: usize = 100;

/// The podcast object of the API.
#[derive(Debug, Clone, Serialize)]
pub struct PodcastView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub language: Option<String>,
    pub author: Option<String>,
    pub category: Option<String>,
    /// The owner's link to the cover image, when one was uploaded.
    pub cover_url: Option<String>,
    pub public: bool,
    pub has_feed_token: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PodcastRow> for PodcastView {
    fn from(r: PodcastRow) -> Self {
        let cover_url = r
            .cover_key
            .is_some()
            .then(|| format!("/api/podcasts/{}/cover", r.id));
        Self {
            id: r.id,
            title: r.title,
            description: r.description,
            language: r.language,
            author: r.author,
            category: r.category,
            cover_url,
            public: r.public,
            has_feed_token: r.has_feed_token,
            created_at: to_rfc3339(r.created_at),
            updated_at: to_rfc3339(r.updated_at),
        }
    }
}

/// Body of create and update. On create, `title` is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodcastFields {
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub language: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub author: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub category: Option<Option<String>>,
    pub public: Option<bool>,
}

fn changes(f: PodcastFields) -> Result<Changes> {
    let title = f
        .title
        .as_deref()
        .map(crate::speech::text::title)
        .transpose()?;
    if f.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(AppError::field(
            "invalid_request",
            "description",
            "Descriptions are at most 4000 characters",
        ));
    }
    let short = |name: &str, v: Option<Option<String>>| -> Result<Option<Option<String>>> {
        match v {
            Some(Some(s)) if s.chars().count() > 100 => Err(AppError::field(
                "invalid_request",
                name,
                "At most 100 characters",
            )),
            Some(Some(s)) if s.trim().is_empty() => Ok(Some(None)),
            Some(Some(s)) => Ok(Some(Some(s.trim().to_string()))),
            other => Ok(other),
        }
    };
    let category = match f.category {
        Some(Some(c)) => {
            let c = c.trim().to_string();
            if c.is_empty() || c.chars().count() > MAX_CATEGORY_CHARS {
                return Err(AppError::field(
                    "invalid_request",
                    "category",
                    "A category has 1 to 100 characters",
                ));
            }
            Some(Some(c))
        }
        other => other,
    };
    Ok(Changes {
        title,
        category,
        description: f.description.map(|d| d.trim().to_string()),
        language: short("language", f.language)?,
        author: short("author", f.author)?,
        public: f.public,
    })
}

pub async fn create(state: &Services, user: Ulid, f: PodcastFields) -> Result<PodcastRow> {
    if f.title.is_none() {
        return Err(AppError::field(
            "invalid_request",
            "title",
            "A podcast needs a title",
        ));
    }
    let c = changes(f)?;
    let id = state.db.new_id();
    state
        .db
        .write(move |conn| {
            podcasts::insert(conn, id, user, &c, now_ms())?;
            Ok(podcasts::get(conn, user, id)?)
        })
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn get(state: &Services, user: Ulid, id: Ulid) -> Result<PodcastRow> {
    state
        .db
        .read(move |c| Ok(podcasts::get(c, user, id)?))
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn list(state: &Services, user: Ulid, req: &PageRequest) -> Result<Page<PodcastRow>> {
    let cursor = req.ulid_cursor()?;
    let fetch = req.fetch();
    let rows = state
        .db
        .read(move |c| Ok(podcasts::list(c, user, cursor.as_deref(), fetch)?))
        .await?;
    Ok(Page::from_rows(rows, req, |r| r.id.clone()))
}

pub async fn update(
    state: &Services,
    user: Ulid,
    id: Ulid,
    f: PodcastFields,
) -> Result<PodcastRow> {
    let c = changes(f)?;
    state
        .db
        .write(move |conn| {
            podcasts::update(conn, user, id, &c, now_ms())?;
            Ok(podcasts::get(conn, user, id)?)
        })
        .await?
        .ok_or(AppError::NotFound)
}

/// Deletes the show, its cover, its episodes and their audios (objects included).
pub async fn delete(state: &Services, user: Ulid, id: Ulid) -> Result<()> {
    let Some(show) = state
        .db
        .read(move |c| Ok(podcasts::get(c, user, id)?))
        .await?
    else {
        return Ok(());
    };
    let audios = state
        .db
        .read(move |c| Ok(podcasts::episode_audios(c, id)?))
        .await?;
    for audio in audios.iter().filter_map(|a| a.parse::<Ulid>().ok()) {
        crate::speech::service::delete(state, user, audio).await?;
    }
    state
        .db
        .write(move |c| {
            let tx = c.transaction()?;
            podcasts::delete(&tx, user, id)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    if let Some(key) = show.cover_key {
        delete_object(state, &key).await;
    }
    Ok(())
}

// ---- cover images ----

/// The image types a cover may have, told apart by their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverType {
    Jpeg,
    Png,
}

impl CoverType {
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            _ => None,
        }
    }

    pub fn from_ext(ext: &str) -> Option<Self> {
        match ext {
            "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }

    fn of_key(key: &str) -> Option<Self> {
        Self::from_ext(key.rsplit_once('.')?.1)
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }

    fn matches(self, bytes: &[u8]) -> bool {
        match self {
            Self::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            Self::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        }
    }
}

/// Best effort: a leftover object only costs space, and the row no longer points at it.
async fn delete_object(state: &Services, key: &str) {
    if let Err(e) = state.storage.delete(&Key::from_stored(key)).await {
        tracing::warn!(key, error = %e, "could not delete a cover image");
    }
}

/// Stores a JPEG or PNG cover (checked by its leading bytes, not only the declared type),
/// replacing the previous one.
pub async fn set_cover(
    state: &Services,
    user: Ulid,
    id: Ulid,
    content_type: Option<&str>,
    bytes: bytes::Bytes,
) -> Result<PodcastRow> {
    let kind = content_type
        .and_then(CoverType::from_mime)
        .ok_or_else(|| AppError::UnsupportedMediaType("A cover is a JPEG or PNG image".into()))?;
    if bytes.len() > MAX_COVER_BYTES {
        return Err(AppError::PayloadTooLarge);
    }
    if !kind.matches(&bytes) {
        return Err(AppError::UnsupportedMediaType(format!(
            "The body is not a {} image",
            kind.mime()
        )));
    }
    get(state, user, id).await?;
    let key = keys::cover(id, kind.ext());
    state
        .storage
        .put(&key, bytes)
        .await
        .map_err(anyhow::Error::from)?;
    let stored = key.as_str().to_string();
    let old = state
        .db
        .write(move |c| Ok(podcasts::set_cover(c, user, id, Some(&stored), now_ms())?))
        .await?;
    match old {
        None => {
            // Deleted while uploading.
            delete_object(state, key.as_str()).await;
            return Err(AppError::NotFound);
        }
        Some(Some(previous)) if previous != key.as_str() => delete_object(state, &previous).await,
        Some(_) => {}
    }
    get(state, user, id).await
}

/// Removes the cover; removing a missing cover is not an error.
pub async fn delete_cover(state: &Services, user: Ulid, id: Ulid) -> Result<()> {
    let old = state
        .db
        .write(move |c| Ok(podcasts::set_cover(c, user, id, None, now_ms())?))
        .await?;
    match old {
        None => Err(AppError::NotFound),
        Some(Some(previous)) => {
            delete_object(state, &previous).await;
            Ok(())
        }
        Some(None) => Ok(()),
    }
}

/// The image and its type.
pub(crate) async fn load_cover(
    state: &Services,
    show: &PodcastRow,
) -> Result<(CoverType, bytes::Bytes)> {
    let key = show.cover_key.as_deref().ok_or(AppError::NotFound)?;
    let kind = CoverType::of_key(key).ok_or(AppError::NotFound)?;
    let bytes = state
        .storage
        .get(&Key::from_stored(key))
        .await
        .map_err(|e| match e {
            StorageError::NotFound(_) => AppError::NotFound,
            other => anyhow::Error::from(other).into(),
        })?;
    Ok((kind, bytes))
}

/// The caller's cover image.
pub async fn cover(state: &Services, user: Ulid, id: Ulid) -> Result<(CoverType, bytes::Bytes)> {
    let show = get(state, user, id).await?;
    load_cover(state, &show).await
}

/// The cover through a signed feed link; the link names the image type it was made for.
pub async fn signed_cover(
    state: &Services,
    id: &str,
    ext: &str,
    exp: i64,
    sig: &str,
) -> Result<(CoverType, bytes::Bytes)> {
    let id: Ulid = id.parse().map_err(|_| link_refused())?;
    let show = state
        .db
        .read(move |c| Ok(podcasts::get_any(c, id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    check_feed_link(
        state,
        COVER_PURPOSE,
        &show.id,
        show.feed_generation,
        exp,
        sig,
    )?;
    let (kind, bytes) = load_cover(state, &show).await?;
    if CoverType::from_ext(ext) != Some(kind) {
        return Err(AppError::NotFound);
    }
    Ok((kind, bytes))
}

/// A long-lived signed link to the show's cover, for feeds; it changes when the show does,
/// so podcast apps fetch a replaced image.
fn cover_feed_url(state: &Services, show: &PodcastRow) -> Option<String> {
    let kind = CoverType::of_key(show.cover_key.as_deref()?)?;
    let exp = show.updated_at / 1000 + FEED_LINK_S;
    Some(state.links.feed_file(
        &format!("podcasts/{}/cover.{}", show.id, kind.ext()),
        COVER_PURPOSE,
        &show.id,
        show.feed_generation,
        exp,
    ))
}

/// Checks a feed link against the show's current generation.
fn check_feed_link(
    state: &Services,
    purpose: &str,
    id: &str,
    generation: i64,
    exp: i64,
    sig: &str,
) -> Result<()> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if state
        .links
        .feed_file_valid(purpose, id, generation, exp, sig, now)
    {
        Ok(())
    } else {
        Err(link_refused())
    }
}

fn link_refused() -> AppError {
    AppError::Forbidden {
        code: "forbidden",
        message: "This link is invalid or has expired".into(),
    }
}

/// An episode reached through a signed feed link, once the link checks out against its
/// show's current feed generation.
async fn signed_episode(
    state: &Services,
    purpose: &'static str,
    id: &str,
    exp: i64,
    sig: &str,
) -> Result<EpisodeRow> {
    let id: Ulid = id.parse().map_err(|_| link_refused())?;
    let (episode, generation) = state
        .db
        .read(move |c| {
            let Some(e) = episodes::get_any(c, id)? else {
                return Ok(None);
            };
            Ok(podcasts::feed_generation(c, &e.podcast_id)?.map(|g| (e, g)))
        })
        .await?
        .ok_or(AppError::NotFound)?;
    check_feed_link(state, purpose, &episode.id, generation, exp, sig)?;
    Ok(episode)
}

/// The finished audio of an episode through its signed feed (enclosure) link.
pub async fn signed_episode_audio(
    state: &Services,
    id: &str,
    exp: i64,
    sig: &str,
) -> Result<AudioRow> {
    let episode = signed_episode(state, EPISODE_AUDIO_PURPOSE, id, exp, sig).await?;
    let audio: Ulid = episode.audio_id.parse().map_err(|_| AppError::NotFound)?;
    state
        .db
        .lookup(move |c| Ok(audios::get_any(c, audio)?))
        .await?
        .ok_or(AppError::NotFound)
}

// ---- scripts ----

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ScriptSource {
    Topic(String),
    Text(String),
    /// `Name: text` lines, parsed here without a model.
    Dialogue(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerVoice {
    pub name: String,
    /// Needed to render; optional when only asking for a script.
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    pub source: ScriptSource,
    pub speakers: Vec<SpeakerVoice>,
    pub minutes: Option<u32>,
    pub language: Option<String>,
    pub style: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptView {
    pub lines: Vec<FlatLine>,
    pub notes: Vec<String>,
}

fn limits(state: &Services) -> ScriptLimits {
    ScriptLimits {
        max_chars: state.config.tts.max_chars,
    }
}

/// A script from a pasted dialogue (no model involved) or from the configured LLM, whose
/// token usage and cost go to the ledger, also when its answer was unusable.
pub async fn write_script(
    state: &Services,
    llm: &ScriptWriter,
    user: Ulid,
    podcast: Ulid,
    body: ScriptBody,
) -> Result<ScriptView> {
    let show = get(state, user, podcast).await?;
    let names: Vec<String> = body
        .speakers
        .iter()
        .map(|s| s.name.trim().to_string())
        .collect();
    let source = match body.source {
        ScriptSource::Dialogue(text) => {
            let text = crate::speech::text::spoken(&text)
                .map_err(|p| p.for_field("source.dialogue", "The dialogue"))?;
            let mut script = parse_dialogue(&text, &names)?;
            let known: Vec<String> = if names.is_empty() {
                script.speakers().into_iter().map(str::to_string).collect()
            } else {
                names
            };
            script.normalize(&known);
            script.validate(&known, &limits(state))?;
            return Ok(ScriptView {
                lines: script.to_flat().lines,
                notes: Vec::new(),
            });
        }
        ScriptSource::Topic(t) => Source::Topic(t),
        ScriptSource::Text(t) => Source::Text(t),
    };
    let request = ScriptRequest {
        source,
        speakers: body
            .speakers
            .into_iter()
            .map(|s| SpeakerBrief {
                name: s.name.trim().to_string(),
                role: s.role,
            })
            .collect(),
        minutes: body.minutes.unwrap_or(5),
        language: body.language.or(show.language),
        style: body.style,
    };
    let result = llm.write_script(&request).await;
    let spent = match &result {
        Ok(draft) => Some((draft.usage, draft.model.clone())),
        Err(LlmError::BadOutput { usage, .. }) => Some((*usage, llm.model().to_string())),
        Err(_) => None,
    };
    if let Some((u, model)) = spent
        && u.prompt_tokens + u.completion_tokens > 0
    {
        let service = format!("llm:{model}");
        let id = state.db.new_id();
        state
            .db
            .write(move |c| {
                let tx = c.transaction()?;
                usage::insert(
                    &tx,
                    &NewUsage {
                        id,
                        user_id: user,
                        audio_id: None,
                        service: &service,
                        units: (u.prompt_tokens + u.completion_tokens) as i64,
                        cost_micros: u.cost_micros as i64,
                        cached: false,
                    },
                    now_ms(),
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
    }
    let draft = result?;
    Ok(ScriptView {
        lines: draft.script.to_flat().lines,
        notes: draft.notes,
    })
}

// ---- episodes ----

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeBody {
    pub title: String,
    pub lines: Vec<FlatLine>,
    pub speakers: Vec<SpeakerVoice>,
    pub pause_ms: Option<u32>,
}

/// A speaker and the voice that speaks their lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cast {
    pub name: String,
    pub voice: String,
}

/// What `episodes.script_json` holds: everything the render job needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpisodeScript {
    pub lines: Vec<FlatLine>,
    pub speakers: Vec<Cast>,
    pub pause_ms: u32,
}

/// What `episodes.timings_json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub lines: Vec<TimedLine>,
    pub chapters: Vec<TimedChapter>,
}

/// The episode object of the API.
#[derive(Debug, Clone, Serialize)]
pub struct EpisodeView {
    pub id: String,
    pub podcast_id: String,
    pub title: String,
    pub audio: AudioView,
    pub lines: Vec<FlatLine>,
    pub speakers: Vec<Cast>,
    pub pause_ms: u32,
    pub created_at: String,
}

impl EpisodeView {
    fn new(e: EpisodeRow, audio: AudioRow) -> Self {
        let script: EpisodeScript = serde_json::from_str(&e.script_json).unwrap_or(EpisodeScript {
            lines: Vec::new(),
            speakers: Vec::new(),
            pause_ms: DEFAULT_PAUSE_MS,
        });
        Self {
            id: e.id,
            podcast_id: e.podcast_id,
            title: e.title,
            audio: audio.into(),
            lines: script.lines,
            speakers: script.speakers,
            pause_ms: script.pause_ms,
            created_at: to_rfc3339(e.created_at),
        }
    }
}

/// Validates the script and the voices, checks the quota, and stores the audio (kind
/// `podcast`), the episode and its render job in one transaction.
pub async fn create_episode(
    state: &Services,
    user: Ulid,
    podcast: Ulid,
    body: EpisodeBody,
) -> Result<EpisodeView> {
    get(state, user, podcast).await?;
    let title = crate::speech::text::title(&body.title)?;
    let pause_ms = body.pause_ms.unwrap_or(DEFAULT_PAUSE_MS);
    if pause_ms > MAX_PAUSE_MS {
        return Err(AppError::field(
            "invalid_request",
            "pause_ms",
            format!("At most {MAX_PAUSE_MS} ms"),
        ));
    }
    let names: Vec<String> = body
        .speakers
        .iter()
        .map(|s| s.name.trim().to_string())
        .collect();
    let mut script = FlatScript { lines: body.lines }.into_script();
    script.normalize(&names);
    script.validate(&names, &limits(state))?;
    let mut cast = Vec::with_capacity(body.speakers.len());
    for (i, s) in body.speakers.iter().enumerate() {
        let Some(voice) = s.voice.as_deref().filter(|v| !v.trim().is_empty()) else {
            return Err(AppError::BadRequest {
                code: "unknown_voice",
                message: format!("Choose a voice for {}", s.name),
                details: Some(json!({ format!("speakers[{i}].voice"): "missing" })),
            });
        };
        let (_, v) = state.providers.voice(voice).await.map_err(|e| {
            let mut err = AppError::from(e);
            if let AppError::BadRequest { details, .. } = &mut err {
                *details = Some(json!({ format!("speakers[{i}].voice"): details.take().unwrap_or(json!("unknown voice")) }));
            }
            err
        })?;
        cast.push(Cast {
            name: names[i].clone(),
            voice: v.id,
        });
    }
    let chars = script.char_count();
    if let Some(remaining) = state.auth.remaining_quota(user).await?
        && chars as u64 > remaining
    {
        return Err(AppError::TooMany {
            code: "quota_exceeded",
            message: format!(
                "This script has {chars} characters but only {remaining} remain in this month's quota"
            ),
            retry_after_s: crate::speech::service::seconds_until_next_month(),
        });
    }
    let stored = EpisodeScript {
        lines: script.to_flat().lines,
        speakers: cast,
        pause_ms,
    };
    let script_json = serde_json::to_string(&stored).map_err(anyhow::Error::from)?;
    let text = script.to_dialogue_text();
    let (audio_id, episode_id, job_id) = (state.db.new_id(), state.db.new_id(), state.db.new_id());
    let (episode, audio) = state
        .db
        .write(move |c| {
            let tx = c.transaction()?;
            let now = now_ms();
            audios::insert(
                &tx,
                &NewAudio {
                    id: audio_id,
                    user_id: user,
                    kind: "podcast",
                    title: &title,
                    voice: None,
                    format: "mp3",
                    speed: 1.0,
                    text: Some(&text),
                    chars: chars as i64,
                },
                now,
            )?;
            episodes::insert(
                &tx,
                &NewEpisode {
                    id: episode_id,
                    podcast_id: podcast,
                    user_id: user,
                    audio_id,
                    title: &title,
                    script_json: &script_json,
                },
                now,
            )?;
            queue::enqueue(
                &tx,
                &NewJob {
                    id: job_id,
                    kind: PODCAST_JOB,
                    user_id: Some(user),
                    audio_id: Some(audio_id),
                    payload: json!({ "episode": episode_id.to_string() }),
                    max_attempts: MAX_ATTEMPTS,
                },
                now,
            )?;
            let episode = episodes::get(&tx, user, podcast, episode_id)?
                .ok_or_else(|| anyhow::anyhow!("inserted episode vanished"))?;
            let audio = audios::get(&tx, user, audio_id)?
                .ok_or_else(|| anyhow::anyhow!("inserted audio vanished"))?;
            tx.commit()?;
            Ok((episode, audio))
        })
        .await?;
    state.jobs.notify();
    Ok(EpisodeView::new(episode, audio))
}

async fn episode_with_audio(
    state: &Services,
    user: Ulid,
    podcast: Ulid,
    id: Ulid,
) -> Result<(EpisodeRow, AudioRow)> {
    state
        .db
        .read(move |c| {
            let Some(e) = episodes::get(c, user, podcast, id)? else {
                return Ok(None);
            };
            let audio = match e.audio_id.parse::<Ulid>() {
                Ok(a) => audios::get(c, user, a)?,
                Err(_) => None,
            };
            Ok(audio.map(|a| (e, a)))
        })
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn get_episode(
    state: &Services,
    user: Ulid,
    podcast: Ulid,
    id: Ulid,
) -> Result<EpisodeView> {
    let (e, a) = episode_with_audio(state, user, podcast, id).await?;
    Ok(EpisodeView::new(e, a))
}

pub async fn list_episodes(
    state: &Services,
    user: Ulid,
    podcast: Ulid,
    req: &PageRequest,
) -> Result<Page<EpisodeView>> {
    get(state, user, podcast).await?;
    let cursor = req.ulid_cursor()?;
    let fetch = req.fetch();
    let rows = state
        .db
        .read(move |c| {
            let mut out = Vec::new();
            for e in episodes::list(c, podcast, cursor.as_deref(), fetch)? {
                if let Some(a) = e
                    .audio_id
                    .parse::<Ulid>()
                    .ok()
                    .and_then(|a| audios::get(c, user, a).transpose())
                {
                    out.push((e, a?));
                }
            }
            Ok(out)
        })
        .await?;
    let page = Page::from_rows(rows, req, |(e, _)| e.id.clone());
    Ok(page.map(|(e, a)| EpisodeView::new(e, a)))
}

/// Deleting the audio removes the episode with it (the row cascades).
pub async fn delete_episode(state: &Services, user: Ulid, podcast: Ulid, id: Ulid) -> Result<()> {
    let found = state
        .db
        .read(move |c| Ok(episodes::get(c, user, podcast, id)?))
        .await?;
    if let Some(e) = found
        && let Ok(audio) = e.audio_id.parse::<Ulid>()
    {
        crate::speech::service::delete(state, user, audio).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    Vtt,
    Srt,
    Chapters,
}

impl Sidecar {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Vtt => "text/vtt; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Chapters => "application/json+chapters",
        }
    }
}

fn render_sidecar(e: &EpisodeRow, kind: Sidecar) -> Result<String> {
    let timings: Timings = match &e.timings_json {
        Some(j) => serde_json::from_str(j).map_err(anyhow::Error::from)?,
        None => {
            return Err(AppError::Conflict("The episode is not rendered yet".into()));
        }
    };
    Ok(match kind {
        Sidecar::Vtt => subtitles::to_vtt(&timings.lines),
        Sidecar::Srt => subtitles::to_srt(&timings.lines),
        Sidecar::Chapters => subtitles::to_chapters_json(&timings.chapters),
    })
}

/// Subtitles or chapters of the caller's episode.
pub async fn sidecar(
    state: &Services,
    user: Ulid,
    podcast: Ulid,
    id: Ulid,
    kind: Sidecar,
) -> Result<String> {
    let e = state
        .db
        .read(move |c| Ok(episodes::get(c, user, podcast, id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    render_sidecar(&e, kind)
}

/// Subtitles or chapters through a signed feed link.
pub async fn signed_sidecar(
    state: &Services,
    id: &str,
    exp: i64,
    sig: &str,
    kind: Sidecar,
) -> Result<String> {
    let purpose = if kind == Sidecar::Chapters {
        CHAPTERS_PURPOSE
    } else {
        TRANSCRIPT_PURPOSE
    };
    let e = signed_episode(state, purpose, id, exp, sig).await?;
    render_sidecar(&e, kind)
}

// ---- feeds ----

/// A new feed token; only its digest is kept, so the previous one stops working.
pub async fn rotate_feed_token(state: &Services, user: Ulid, podcast: Ulid) -> Result<String> {
    let token = secret::random_256();
    let digest = secret::digest(&token);
    let ok = state
        .db
        .write(move |c| {
            Ok(podcasts::set_feed_token(
                c,
                user,
                podcast,
                &digest,
                now_ms(),
            )?)
        })
        .await?;
    if !ok {
        return Err(AppError::NotFound);
    }
    Ok(state.links.feed(&podcast.to_string(), Some(&token)))
}

/// The RSS feed of a public show, or of a private one with its current token; 404 otherwise,
/// so a private show's existence is not revealed.
pub async fn feed(state: &Services, podcast: Ulid, token: Option<&str>) -> Result<String> {
    let (show, digest, items) = state
        .db
        .read(move |c| {
            let Some(show) = podcasts::get_any(c, podcast)? else {
                return Ok(None);
            };
            let digest = podcasts::feed_token_digest(c, podcast)?;
            let mut items = Vec::new();
            for e in episodes::list(c, podcast, None, 1000)? {
                if let Some(a) = e
                    .audio_id
                    .parse::<Ulid>()
                    .ok()
                    .and_then(|a| audios::get_any(c, a).transpose())
                {
                    let a = a?;
                    if a.status == "succeeded" {
                        items.push((e, a));
                    }
                }
            }
            Ok(Some((show, digest, items)))
        })
        .await?
        .ok_or(AppError::NotFound)?;
    let token = token.filter(|t| secret::looks_like_256(t));
    let allowed = show.public
        || matches!((token, &digest), (Some(t), Some(d)) if secret::digest(t).as_slice() == d.as_slice());
    if !allowed {
        return Err(AppError::NotFound);
    }
    let generation = show.feed_generation;
    let items: Vec<Item> = items
        .into_iter()
        .map(|(e, a)| {
            let exp = e.created_at / 1000 + FEED_LINK_S;
            let link = |file: String, purpose| {
                state
                    .links
                    .feed_file(&file, purpose, &e.id, generation, exp)
            };
            let rendered = e.timings_json.is_some();
            Item {
                guid: e.id.clone(),
                title: e.title.clone(),
                description: None,
                link: None,
                published_ms: e.created_at,
                audio_url: link(
                    format!("episodes/{}/audio.{}", e.id, a.format),
                    EPISODE_AUDIO_PURPOSE,
                ),
                audio_bytes: a.size_bytes.unwrap_or(0) as u64,
                audio_type: if a.format == "wav" {
                    "audio/wav"
                } else {
                    "audio/mpeg"
                }
                .into(),
                duration_ms: a.duration_ms.unwrap_or(0) as u64,
                transcript_url: rendered.then(|| {
                    link(
                        format!("episodes/{}/transcript.vtt", e.id),
                        TRANSCRIPT_PURPOSE,
                    )
                }),
                chapters_url: rendered
                    .then(|| link(format!("episodes/{}/chapters.json", e.id), CHAPTERS_PURPOSE)),
            }
        })
        .collect();
    let image_url = cover_feed_url(state, &show);
    let rss = Show {
        title: show.title,
        link: state.links.show_page(&show.id),
        description: show.description,
        author: show.author,
        language: show.language,
        image_url,
        category: show.category,
        explicit: false,
        feed_url: Some(
            state
                .links
                .feed(&show.id, if show.public { None } else { token }),
        ),
    };
    Ok(feed::render(&rss, &items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_types_come_from_the_declared_type_and_must_match_the_leading_bytes() {
        assert_eq!(CoverType::from_mime("image/PNG; q=1"), Some(CoverType::Png));
        assert_eq!(CoverType::from_mime("image/jpeg"), Some(CoverType::Jpeg));
        assert_eq!(CoverType::from_mime("image/gif"), None);
        assert!(CoverType::Png.matches(b"\x89PNG\r\n\x1a\n rest"));
        assert!(!CoverType::Png.matches(b"\xFF\xD8\xFF\xE0"));
        assert!(CoverType::Jpeg.matches(b"\xFF\xD8\xFF\xE0"));
        assert!(!CoverType::Jpeg.matches(b"<svg"));
        assert_eq!(CoverType::of_key("covers/01HX.jpg"), Some(CoverType::Jpeg));
        assert_eq!(CoverType::of_key("covers/01HX"), None);
    }
}
