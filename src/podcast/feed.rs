//! The podcast RSS feed: RSS 2.0 with the iTunes and Podcasting 2.0 namespaces.

use std::borrow::Cow;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

const ITUNES_NS: &str = "http://www.itunes.com/dtds/podcast-1.0.dtd";
const PODCAST_NS: &str = "https://podcastindex.org/namespace/1.0";
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

/// The show, with absolute URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Show {
    pub title: String,
    /// The show's web page.
    pub link: String,
    pub description: String,
    pub author: Option<String>,
    /// A language tag such as `en` or `zh-CN`.
    pub language: Option<String>,
    pub image_url: Option<String>,
    /// An Apple Podcasts category, e.g. `Technology` or `Society & Culture`.
    pub category: Option<String>,
    pub explicit: bool,
    /// This feed's own URL (with its token for a private show), announced as `atom:link rel=self`.
    pub feed_url: Option<String>,
}

/// One episode, with already-signed absolute URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// Stable for the episode's life (its id), so apps never download it twice.
    pub guid: String,
    pub title: String,
    pub description: Option<String>,
    pub link: Option<String>,
    pub published_ms: i64,
    pub audio_url: String,
    pub audio_bytes: u64,
    /// e.g. `audio/mpeg`.
    pub audio_type: String,
    pub duration_ms: u64,
    /// WebVTT subtitles.
    pub transcript_url: Option<String>,
    /// Podcasting 2.0 JSON chapters.
    pub chapters_url: Option<String>,
}

/// Drops characters that XML 1.0 forbids (most control characters), which would otherwise
/// make the whole feed unreadable to podcast apps.
fn xml_safe(s: &str) -> Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    if s.chars().all(allowed) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| allowed(c)).collect())
    }
}

fn rfc2822(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&Rfc2822)
        .ok()
}

/// `HH:MM:SS`, which every podcast app reads.
fn duration(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn text<W: io::Write>(w: &mut Writer<W>, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_safe(value)))?;
    Ok(())
}

fn empty<W: io::Write>(w: &mut Writer<W>, name: &str, attrs: &[(&str, &str)]) -> io::Result<()> {
    let safe: Vec<(&str, Cow<'_, str>)> = attrs.iter().map(|(k, v)| (*k, xml_safe(v))).collect();
    w.create_element(name)
        .with_attributes(safe.iter().map(|(k, v)| (*k, v.as_ref())))
        .write_empty()?;
    Ok(())
}

/// The feed's XML. Items are listed newest first.
pub fn render(show: &Show, items: &[Item]) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_feed(&mut w, show, items).expect("writing XML to memory cannot fail");
    String::from_utf8(w.into_inner()).expect("the writer only emits UTF-8")
}

fn write_feed<W: io::Write>(w: &mut Writer<W>, show: &Show, items: &[Item]) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("rss")
        .with_attributes([
            ("version", "2.0"),
            ("xmlns:itunes", ITUNES_NS),
            ("xmlns:podcast", PODCAST_NS),
            ("xmlns:atom", ATOM_NS),
        ])
        .write_inner_content(|w| {
            w.create_element("channel")
                .write_inner_content(|w| write_channel(w, show, items))?;
            Ok(())
        })?;
    Ok(())
}

fn write_channel<W: io::Write>(w: &mut Writer<W>, show: &Show, items: &[Item]) -> io::Result<()> {
    text(w, "title", &show.title)?;
    text(w, "link", &show.link)?;
    text(w, "description", &show.description)?;
    if let Some(language) = &show.language {
        text(w, "language", language)?;
    }
    text(w, "generator", "aimake")?;
    let mut ordered: Vec<&Item> = items.iter().collect();
    ordered.sort_by_key(|i| std::cmp::Reverse(i.published_ms));
    // The newest episode's date, so the feed's bytes change only when its content does.
    if let Some(date) = ordered.first().and_then(|i| rfc2822(i.published_ms)) {
        text(w, "lastBuildDate", &date)?;
    }
    if let Some(url) = &show.feed_url {
        empty(
            w,
            "atom:link",
            &[
                ("href", url),
                ("rel", "self"),
                ("type", "application/rss+xml"),
            ],
        )?;
    }
    if let Some(image) = &show.image_url {
        w.create_element("image").write_inner_content(|w| {
            text(w, "url", image)?;
            text(w, "title", &show.title)?;
            text(w, "link", &show.link)
        })?;
        empty(w, "itunes:image", &[("href", image)])?;
    }
    if let Some(author) = &show.author {
        text(w, "itunes:author", author)?;
    }
    if let Some(category) = &show.category {
        text(w, "category", category)?;
        empty(w, "itunes:category", &[("text", category)])?;
    }
    text(
        w,
        "itunes:explicit",
        if show.explicit { "true" } else { "false" },
    )?;
    text(w, "itunes:type", "episodic")?;
    for item in ordered {
        w.create_element("item")
            .write_inner_content(|w| write_item(w, item))?;
    }
    Ok(())
}

fn write_item<W: io::Write>(w: &mut Writer<W>, item: &Item) -> io::Result<()> {
    text(w, "title", &item.title)?;
    if let Some(description) = &item.description {
        text(w, "description", description)?;
    }
    if let Some(link) = &item.link {
        text(w, "link", link)?;
    }
    w.create_element("guid")
        .with_attribute(("isPermaLink", "false"))
        .write_text_content(BytesText::new(&xml_safe(&item.guid)))?;
    if let Some(date) = rfc2822(item.published_ms) {
        text(w, "pubDate", &date)?;
    }
    empty(
        w,
        "enclosure",
        &[
            ("url", &item.audio_url),
            ("length", &item.audio_bytes.to_string()),
            ("type", &item.audio_type),
        ],
    )?;
    text(w, "itunes:duration", &duration(item.duration_ms))?;
    if let Some(url) = &item.transcript_url {
        empty(
            w,
            "podcast:transcript",
            &[("url", url), ("type", "text/vtt"), ("rel", "captions")],
        )?;
    }
    if let Some(url) = &item.chapters_url {
        empty(
            w,
            "podcast:chapters",
            &[("url", url), ("type", "application/json+chapters")],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRICKY: &str = "Tom & Jerry <live> 🎙️ 播客：茶与咖啡";

    fn show() -> Show {
        Show {
            title: TRICKY.into(),
            link: "https://audio.example.com/podcasts/01J".into(),
            description: "Talk about <b>tea</b> & coffee".into(),
            author: Some("Zoë & 小明".into()),
            language: Some("zh-CN".into()),
            image_url: Some("https://audio.example.com/media/cover.jpg?sig=a&exp=1".into()),
            category: Some("Society & Culture".into()),
            explicit: false,
            feed_url: Some("https://audio.example.com/feeds/01J.xml?token=t".into()),
        }
    }

    fn item(guid: &str, title: &str, published_ms: i64) -> Item {
        Item {
            guid: guid.into(),
            title: title.into(),
            description: Some("First & <best> episode".into()),
            link: None,
            published_ms,
            audio_url: format!(
                "https://audio.example.com/media/{guid}.mp3?exp=2000000000&sig=x%2By"
            ),
            audio_bytes: 1_234_567,
            audio_type: "audio/mpeg".into(),
            duration_ms: 3_723_400,
            transcript_url: Some(format!(
                "https://audio.example.com/{guid}/subtitles.vtt?sig=1&e=2"
            )),
            chapters_url: Some(format!(
                "https://audio.example.com/{guid}/chapters.json?sig=1&e=2"
            )),
        }
    }

    fn parse(xml: &str) -> rss::Channel {
        rss::Channel::read_from(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"))
    }

    #[test]
    fn the_feed_parses_and_titles_survive_escaping() {
        let xml = render(
            &show(),
            &[
                item("01A", "Ep 1: A & B < C 🎧", 1_767_225_600_000),
                item("01B", "第二集：你好 & <再见>", 1_767_312_000_000),
            ],
        );
        let channel = parse(&xml);
        assert_eq!(channel.title(), TRICKY);
        assert_eq!(channel.description(), "Talk about <b>tea</b> & coffee");
        assert_eq!(channel.language(), Some("zh-CN"));
        assert_eq!(channel.generator(), Some("aimake"));
        let titles: Vec<_> = channel.items().iter().map(|i| i.title().unwrap()).collect();
        assert_eq!(
            titles,
            vec!["第二集：你好 & <再见>", "Ep 1: A & B < C 🎧"],
            "newest first"
        );
        assert_eq!(
            channel.image().unwrap().url(),
            "https://audio.example.com/media/cover.jpg?sig=a&exp=1"
        );
        assert_eq!(channel.categories()[0].name(), "Society & Culture");
        assert_eq!(
            channel.last_build_date(),
            Some("Fri, 02 Jan 2026 00:00:00 +0000")
        );
    }

    #[test]
    fn items_carry_guid_date_enclosure_and_duration() {
        let xml = render(&show(), &[item("01A", "One", 1_767_225_600_000)]);
        assert!(
            xml.contains("<guid isPermaLink=\"false\">01A</guid>"),
            "{xml}"
        );
        let channel = parse(&xml);
        let item = &channel.items()[0];
        let guid = item.guid().unwrap();
        assert_eq!(guid.value(), "01A");
        assert!(!guid.is_permalink());
        assert_eq!(item.pub_date(), Some("Thu, 01 Jan 2026 00:00:00 +0000"));
        let enclosure = item.enclosure().unwrap();
        assert_eq!(
            enclosure.url(),
            "https://audio.example.com/media/01A.mp3?exp=2000000000&sig=x%2By"
        );
        assert_eq!(enclosure.length(), "1234567");
        assert_eq!(enclosure.mime_type(), "audio/mpeg");
        assert_eq!(item.description(), Some("First & <best> episode"));
        let itunes = item.itunes_ext().unwrap();
        assert_eq!(itunes.duration(), Some("01:02:03"));
    }

    #[test]
    fn itunes_and_podcasting_2_0_tags_are_present() {
        let xml = render(&show(), &[item("01A", "One", 1_767_225_600_000)]);
        let channel = parse(&xml);
        assert_eq!(
            channel.namespaces().get("itunes").map(String::as_str),
            Some(ITUNES_NS)
        );
        assert_eq!(
            channel.namespaces().get("podcast").map(String::as_str),
            Some(PODCAST_NS)
        );
        let itunes = channel.itunes_ext().unwrap();
        assert_eq!(itunes.author(), Some("Zoë & 小明"));
        assert_eq!(itunes.explicit(), Some("false"));
        assert_eq!(itunes.categories()[0].text(), "Society & Culture");
        assert_eq!(
            itunes.image(),
            Some("https://audio.example.com/media/cover.jpg?sig=a&exp=1")
        );

        let podcast = &channel.items()[0].extensions()["podcast"];
        let transcript = podcast["transcript"][0].attrs();
        assert_eq!(
            transcript["url"],
            "https://audio.example.com/01A/subtitles.vtt?sig=1&e=2"
        );
        assert_eq!(transcript["type"], "text/vtt");
        let chapters = podcast["chapters"][0].attrs();
        assert_eq!(
            chapters["url"],
            "https://audio.example.com/01A/chapters.json?sig=1&e=2"
        );
        assert_eq!(chapters["type"], "application/json+chapters");
        let atom = &channel.extensions()["atom"]["link"][0];
        assert_eq!(atom.attrs()["rel"], "self");
    }

    #[test]
    fn control_characters_are_dropped_so_the_feed_stays_valid() {
        let mut s = show();
        s.title = "Bad\u{0}title\u{1b}[0m".into();
        let xml = render(&s, &[item("01A", "tab\tand\u{7}bell", 0)]);
        let channel = parse(&xml);
        assert_eq!(channel.title(), "Badtitle[0m");
        assert_eq!(channel.items()[0].title(), Some("tab\tandbell"));
    }

    #[test]
    fn a_show_without_episodes_or_optional_fields_is_still_a_valid_feed() {
        let s = Show {
            title: "Empty".into(),
            link: "https://a.example".into(),
            description: String::new(),
            ..Show::default()
        };
        let channel = parse(&render(&s, &[]));
        assert_eq!(channel.title(), "Empty");
        assert!(channel.items().is_empty());
        assert!(channel.image().is_none());
    }

    #[test]
    fn durations_round_to_whole_seconds() {
        assert_eq!(duration(0), "00:00:00");
        assert_eq!(duration(59_499), "00:00:59");
        assert_eq!(duration(59_500), "00:01:00");
        assert_eq!(duration(36_000_000), "10:00:00");
    }
}
