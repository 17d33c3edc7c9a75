//! Podcast operations without HTTP: shows, their covers, scripts (pasted or written by the
//! LLM), episodes queued for rendering, their subtitles and chapters, and the RSS feed with
//! the signed links it carries.

mod covers;
mod episodes;
mod feed_links;
mod feeds;
mod published;
mod scripts;
mod shows;
mod sidecars;

pub(crate) use covers::load_cover;
pub use covers::{CoverType, MAX_COVER_BYTES, cover, delete_cover, set_cover, signed_cover};
pub use episodes::{
    Cast, EpisodeBody, EpisodeScript, EpisodeView, PODCAST_JOB, Timings, create_episode,
    delete_episode, get_episode, list_episodes,
};
pub use feed_links::{
    CHAPTERS_PURPOSE, COVER_PURPOSE, EPISODE_AUDIO_PURPOSE, TRANSCRIPT_PURPOSE,
    signed_episode_audio,
};
pub use feeds::{feed, rotate_feed_token};
pub use published::FeedFile;
pub use scripts::{ScriptBody, ScriptSource, ScriptView, SpeakerVoice, write_script};
pub use shows::{PodcastFields, PodcastView, create, delete, get, list, update};
pub use sidecars::{Sidecar, sidecar, signed_sidecar};
