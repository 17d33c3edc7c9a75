//! Public links: the absolute URLs that users, browsers and podcast apps open, made from the
//! public URL and signed with the server's [`Signer`] where they grant access on their own.

use std::sync::Arc;

use crate::signing::Signer;

/// Purpose of a shared audio's link (`/media/{id}`).
pub const MEDIA_PURPOSE: &str = "media";

#[derive(Clone)]
pub struct Links {
    /// The origin users reach the server at, without a trailing slash.
    public_url: Arc<str>,
    signer: Signer,
}

impl Links {
    pub fn new(public_url: Arc<str>, signer: Signer) -> Self {
        Self { public_url, signer }
    }

    /// The origin users reach the server at, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Users reach the server over https (directly or through a proxy that ends TLS): cookies
    /// are Secure and answers carry HSTS.
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// A shared audio's bytes, valid until `exp` (Unix seconds).
    pub fn media(&self, audio_id: &str, exp: i64) -> String {
        let sig = self.signer.sign(MEDIA_PURPOSE, audio_id, exp);
        format!("{}/media/{audio_id}?exp={exp}&sig={sig}", self.public_url)
    }

    /// Whether a media link's signature is this server's and has not expired at `now`.
    pub fn media_valid(&self, audio_id: &str, exp: i64, sig: &str, now: i64) -> bool {
        self.signer.verify(MEDIA_PURPOSE, audio_id, exp, sig, now)
    }

    /// A show's page in the web app.
    pub fn show_page(&self, podcast: &str) -> String {
        format!("{}/podcasts/{podcast}", self.public_url)
    }

    /// A show's RSS feed; a private show's carries its token.
    pub fn feed(&self, podcast: &str, token: Option<&str>) -> String {
        match token {
            Some(t) => format!("{}/feeds/{podcast}.xml?token={t}", self.public_url),
            None => format!("{}/feeds/{podcast}.xml", self.public_url),
        }
    }

    /// A file a feed links to (`/feeds/{path}?exp=…&sig=…`), signed for `id` as of the show's
    /// feed `generation`: a new feed token or going private bumps the generation, so the links
    /// of every earlier feed stop verifying, while the links of one generation stay the same
    /// URL on every fetch (podcast apps key episodes on them).
    pub fn feed_file(
        &self,
        path: &str,
        purpose: &str,
        id: &str,
        generation: i64,
        exp: i64,
    ) -> String {
        let sig = self
            .signer
            .sign(purpose, &feed_subject(id, generation), exp);
        format!("{}/feeds/{path}?exp={exp}&sig={sig}", self.public_url)
    }

    /// Whether a feed file's link checks out against the show's current `generation` at `now`.
    pub fn feed_file_valid(
        &self,
        purpose: &str,
        id: &str,
        generation: i64,
        exp: i64,
        sig: &str,
        now: i64,
    ) -> bool {
        self.signer
            .verify(purpose, &feed_subject(id, generation), exp, sig, now)
    }
}

/// What a feed link signs: the object, and the show's feed generation.
fn feed_subject(id: &str, generation: i64) -> String {
    format!("{id}/{generation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new("https://audio.example".into(), Signer::from_key([7; 32]))
    }

    #[test]
    fn a_media_link_verifies_for_its_audio_only_and_until_it_expires() {
        let links = links();
        let url = links.media("01HAUDIO", 2_000);
        let sig = url.rsplit_once("sig=").unwrap().1;
        assert!(url.starts_with("https://audio.example/media/01HAUDIO?exp=2000&sig="));
        assert!(links.media_valid("01HAUDIO", 2_000, sig, 1_000));
        assert!(!links.media_valid("01HOTHER", 2_000, sig, 1_000));
        assert!(!links.media_valid("01HAUDIO", 2_000, sig, 3_000));
    }

    #[test]
    fn a_feed_file_link_stops_verifying_when_the_feed_generation_moves_on() {
        let links = links();
        let url = links.feed_file(
            "episodes/01HEP/audio.mp3",
            "episode-audio",
            "01HEP",
            3,
            2_000,
        );
        assert!(
            url.starts_with("https://audio.example/feeds/episodes/01HEP/audio.mp3?exp=2000&sig=")
        );
        let sig = url.rsplit_once("sig=").unwrap().1;
        assert!(links.feed_file_valid("episode-audio", "01HEP", 3, 2_000, sig, 1_000));
        assert!(!links.feed_file_valid("episode-audio", "01HEP", 4, 2_000, sig, 1_000));
        assert!(!links.feed_file_valid("transcript", "01HEP", 3, 2_000, sig, 1_000));
        assert_eq!(
            links.feed("01HSHOW", Some("tok")),
            "https://audio.example/feeds/01HSHOW.xml?token=tok"
        );
    }
}
