//! The transcript every provider's answer becomes, and the pure steps that make one: times
//! made monotonic, segments grouped from words, language names read as ISO 639-1 codes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::providers::is_wide;

/// A pause this long between two words starts a new segment.
const SEGMENT_GAP_S: f64 = 1.0;
/// Segments are cut at the next word after this long, so a subtitle stays readable.
const SEGMENT_MAX_S: f64 = 30.0;

/// What was said, with times in seconds from the start of the audio. Times never go back:
/// each segment and word starts no earlier than the one before and ends no earlier than it
/// starts. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// ISO 639-1 (`en`, `zh`) where known, else the provider's own name for it; `None` when
    /// neither the request nor the provider said.
    pub language: Option<String>,
    /// Seconds of audio heard.
    pub duration: f64,
    pub text: String,
    /// Sentences or phrases; empty only when there is no text.
    pub segments: Vec<Segment>,
    /// Empty when words were not asked for or the model gives no word times.
    pub words: Vec<Word>,
    /// The model that transcribed, for usage rows (`asr:openai:whisper-1`).
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// A label that stays the same for one voice within a transcript (`speaker_0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub start: f64,
    pub end: f64,
    pub word: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

impl Transcript {
    pub fn duration(&self) -> Duration {
        Duration::try_from_secs_f64(self.duration).unwrap_or_default()
    }

    /// The same transcript for audio that started `offset` seconds into a longer recording:
    /// how a splitter stitches its pieces.
    pub fn shifted(mut self, offset: f64) -> Self {
        for s in &mut self.segments {
            s.start += offset;
            s.end += offset;
        }
        for w in &mut self.words {
            w.start += offset;
            w.end += offset;
        }
        self
    }

    /// Makes the times hold what [`Transcript`] promises whatever the provider sent: no
    /// negative or missing times, starts that never go back, ends no earlier than starts,
    /// nothing past the end of the audio. A duration the provider did not give is taken
    /// from the last time heard.
    pub(crate) fn tidy(mut self) -> Self {
        let finite = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
        self.duration = finite(self.duration);
        let last = self
            .segments
            .iter()
            .map(|s| finite(s.end))
            .chain(self.words.iter().map(|w| finite(w.end)))
            .fold(0.0, f64::max);
        if self.duration == 0.0 {
            self.duration = last;
        }
        let duration = self.duration;
        let fix = |start: &mut f64, end: &mut f64, previous: &mut f64| {
            *start = finite(*start).max(*previous).min(duration);
            *end = finite(*end).max(*start).min(duration);
            *previous = *start;
        };
        let mut previous = 0.0;
        for s in &mut self.segments {
            fix(&mut s.start, &mut s.end, &mut previous);
            s.text = s.text.trim().to_string();
        }
        let mut previous = 0.0;
        for w in &mut self.words {
            fix(&mut w.start, &mut w.end, &mut previous);
            w.word = w.word.trim().to_string();
        }
        self.segments.retain(|s| !s.text.is_empty());
        self.words.retain(|w| !w.word.is_empty());
        self.text = self.text.trim().to_string();
        self
    }
}

/// Words joined as they are written: a space between words, none between two CJK characters
/// or before punctuation that closes (`,` `.` `。` `，`).
pub fn join_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for word in words {
        let word = word.trim();
        if word.is_empty() {
            continue;
        }
        let glued = match (out.chars().last(), word.chars().next()) {
            (None, _) => true,
            (Some(before), Some(after)) => {
                (is_wide(before) && is_wide(after))
                    || matches!(after, ',' | '.' | '!' | '?' | ';' | ':' | ')' | '%')
                    || (is_wide(after) && !after.is_alphanumeric())
            }
            _ => true,
        };
        if !glued {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Segments made from timed words, for providers that give words only: a new one starts at a
/// change of speaker, after a word that ends a sentence, at a pause of a second or more, and
/// once a segment has run 30 seconds.
pub fn segments_from_words(words: &[Word]) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut group: Vec<&Word> = Vec::new();
    let flush = |group: &mut Vec<&Word>, segments: &mut Vec<Segment>| {
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            segments.push(Segment {
                start: first.start,
                end: last.end,
                text: join_words(group.iter().map(|w| w.word.as_str())),
                speaker: first.speaker.clone(),
            });
        }
        group.clear();
    };
    for word in words {
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            let ends_sentence = last
                .word
                .trim_end()
                .ends_with(['.', '?', '!', '。', '？', '！']);
            if word.speaker != last.speaker
                || ends_sentence
                || word.start - last.end >= SEGMENT_GAP_S
                || word.start - first.start >= SEGMENT_MAX_S
            {
                flush(&mut group, &mut segments);
            }
        }
        group.push(word);
    }
    flush(&mut group, &mut segments);
    segments
}

/// Whisper's languages by the names its `verbose_json` gives (`english`), with their codes.
const WHISPER_LANGUAGES: &[(&str, &str)] = &[
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// Three-letter codes (ISO 639-2/3) some providers answer with, for the common languages.
const THREE_LETTER: &[(&str, &str)] = &[
    ("eng", "en"),
    ("zho", "zh"),
    ("chi", "zh"),
    ("cmn", "zh"),
    ("spa", "es"),
    ("fra", "fr"),
    ("fre", "fr"),
    ("deu", "de"),
    ("ger", "de"),
    ("jpn", "ja"),
    ("kor", "ko"),
    ("por", "pt"),
    ("rus", "ru"),
    ("ita", "it"),
    ("nld", "nl"),
    ("dut", "nl"),
    ("ara", "ar"),
    ("hin", "hi"),
    ("tur", "tr"),
    ("pol", "pl"),
    ("vie", "vi"),
    ("tha", "th"),
    ("ind", "id"),
    ("msa", "ms"),
    ("ukr", "uk"),
    ("swe", "sv"),
    ("ces", "cs"),
    ("ell", "el"),
    ("heb", "he"),
    ("fil", "tl"),
];

/// The English name Whisper gives a language in `verbose_json` (`english`), for an ISO 639-1
/// code (`en`, or `en-US`); `None` for codes Whisper does not know.
pub fn language_name(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_lowercase();
    let primary = code.split(['-', '_']).next().unwrap_or_default();
    WHISPER_LANGUAGES
        .iter()
        .find(|(c, _)| *c == primary)
        .map(|(_, name)| *name)
}

/// A language as a provider names it (`english`, `eng`, `en`, `en-US`) as the ISO 639-1
/// code where there is one; anything else is kept, lower-cased.
pub fn language_code(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if let Some((code, _)) = WHISPER_LANGUAGES.iter().find(|(_, n)| *n == name) {
        return (*code).to_string();
    }
    if let Some((_, code)) = THREE_LETTER.iter().find(|(three, _)| *three == name) {
        return (*code).to_string();
    }
    match name.split_once(['-', '_']) {
        Some((primary, _)) if primary.len() == 2 => primary.to_string(),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(start: f64, end: f64, text: &str) -> Word {
        Word {
            start,
            end,
            word: text.into(),
            speaker: None,
        }
    }

    fn transcript(words: Vec<Word>, segments: Vec<Segment>, duration: f64) -> Transcript {
        Transcript {
            language: None,
            duration,
            text: " hello ".into(),
            segments,
            words,
            model: "m".into(),
        }
    }

    #[test]
    fn tidy_times_never_go_back_and_stay_within_the_audio() {
        let t = transcript(
            vec![
                word(-0.2, 0.4, " Hi"),
                word(0.5, 0.3, "there"),
                word(0.45, 0.9, "again"),
                word(f64::NAN, 1.0, "x"),
                word(1.2, 9.0, "end"),
                word(1.3, 1.4, "  "),
            ],
            vec![Segment {
                start: 0.0,
                end: 12.0,
                text: " Hi there ".into(),
                speaker: None,
            }],
            2.0,
        )
        .tidy();
        let times: Vec<(f64, f64)> = t.words.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(
            times,
            [(0.0, 0.4), (0.5, 0.5), (0.5, 0.9), (0.5, 1.0), (1.2, 2.0)]
        );
        assert_eq!(t.words[0].word, "Hi");
        assert_eq!(t.segments[0].end, 2.0);
        assert_eq!(t.segments[0].text, "Hi there");
        assert_eq!(t.text, "hello");
    }

    #[test]
    fn a_missing_duration_is_taken_from_the_last_time_heard() {
        let t = transcript(
            vec![word(0.0, 0.5, "a"), word(0.6, 3.25, "b")],
            Vec::new(),
            0.0,
        )
        .tidy();
        assert_eq!(t.duration, 3.25);
        assert_eq!(t.duration(), Duration::from_millis(3250));
    }

    #[test]
    fn shifting_moves_every_time_by_the_offset() {
        let t = transcript(
            vec![word(0.0, 0.5, "a")],
            vec![Segment {
                start: 0.0,
                end: 0.5,
                text: "a".into(),
                speaker: None,
            }],
            0.5,
        )
        .shifted(60.0);
        assert_eq!((t.words[0].start, t.words[0].end), (60.0, 60.5));
        assert_eq!((t.segments[0].start, t.segments[0].end), (60.0, 60.5));
    }

    #[test]
    fn words_join_with_spaces_except_between_cjk_and_before_punctuation() {
        assert_eq!(join_words(["Hello", ",", "world", "!"]), "Hello, world!");
        assert_eq!(join_words(["你好", "世界", "。"]), "你好世界。");
        assert_eq!(
            join_words(["我", "用", "aimake", "录音"]),
            "我用 aimake 录音"
        );
        assert_eq!(join_words([" a ", "", "b"]), "a b");
    }

    #[test]
    fn segments_break_at_sentences_pauses_speakers_and_thirty_seconds() {
        let mut words = vec![
            word(0.0, 0.4, "One"),
            word(0.5, 0.9, "two."),
            word(1.0, 1.4, "Three"),
            word(3.0, 3.4, "four"),
            word(3.5, 3.9, "five"),
        ];
        words[4].speaker = Some("speaker_1".into());
        words.extend((0..70).map(|i| {
            let start = 4.0 + f64::from(i) * 0.5;
            let mut w = word(start, start + 0.4, "la");
            w.speaker = Some("speaker_1".into());
            w
        }));
        let segments = segments_from_words(&words);
        let texts: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts[..3], ["One two.", "Three", "four"]);
        assert_eq!(segments[0].start, 0.0);
        assert_eq!(segments[0].end, 0.9);
        assert_eq!(segments[3].speaker.as_deref(), Some("speaker_1"));
        assert!(segments[3].text.starts_with("five la la"));
        assert!(segments[3].end - segments[3].start < 30.5);
        assert_eq!(segments.len(), 5, "{texts:?}");
        assert!(segments_from_words(&[]).is_empty());
    }

    #[test]
    fn language_names_and_codes_become_iso_639_1() {
        assert_eq!(language_code("english"), "en");
        assert_eq!(language_code("Chinese"), "zh");
        assert_eq!(language_code("eng"), "en");
        assert_eq!(language_code("cmn"), "zh");
        assert_eq!(language_code("en"), "en");
        assert_eq!(language_code("zh-CN"), "zh");
        assert_eq!(language_code("cantonese"), "yue");
        assert_eq!(language_code("klingon"), "klingon");
    }

    #[test]
    fn codes_name_whisper_s_languages() {
        assert_eq!(language_name("en"), Some("english"));
        assert_eq!(language_name("zh-CN"), Some("chinese"));
        assert_eq!(language_name("yue"), Some("cantonese"));
        assert_eq!(language_name("xx"), None);
    }

    #[test]
    fn transcripts_round_trip_through_json_without_empty_speakers() {
        let t = transcript(vec![word(0.0, 0.5, "a")], Vec::new(), 0.5);
        let json = serde_json::to_value(&t).unwrap();
        assert!(json["words"][0].get("speaker").is_none());
        assert_eq!(json["duration"], 0.5);
        let back: Transcript = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
    }
}
