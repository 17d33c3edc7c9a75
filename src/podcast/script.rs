//! The podcast script: chapters of speaker lines, its validation, and the pasted-dialogue parser.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::speech::text::spoken;

/// A dialogue in chapters. The first chapter may have an empty title (lines before any heading).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub chapters: Vec<Chapter>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chapter {
    #[serde(default)]
    pub title: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub speaker: String,
    pub text: String,
}

/// The API's flat shape, `{lines: [{speaker, text, chapter?}]}`: a line that carries `chapter`
/// starts a new chapter with that title, so chapters travel without a second list to keep in step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatScript {
    pub lines: Vec<FlatLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatLine {
    pub speaker: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapter: Option<String>,
}

/// Limits that come from config rather than from the script itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Total characters of spoken text (usually `tts.max_chars`).
    pub max_chars: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self { max_chars: 100_000 }
    }
}

/// One thing wrong with a script or a pasted dialogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `speakers`, `lines`, `lines[3].speaker` (index into the flat line list), or
    /// `line 7` (1-based line of pasted text).
    pub field: String,
    pub message: String,
}

/// Everything wrong with a script, so a user (or a model) can fix it all in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub problems: Vec<Problem>,
}

/// More problems than this are not worth listing: the input is probably not a dialogue at all.
const MAX_PROBLEMS: usize = 20;

impl ScriptError {
    fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                field: field.into(),
                message: message.into(),
            }],
        }
    }

    /// The API's `details` object: field → message (messages for one field joined by "; ").
    pub fn details(&self) -> Value {
        let mut map: BTreeMap<&str, String> = BTreeMap::new();
        for p in &self.problems {
            map.entry(&p.field)
                .and_modify(|m| {
                    m.push_str("; ");
                    m.push_str(&p.message);
                })
                .or_insert_with(|| p.message.clone());
        }
        serde_json::to_value(map).unwrap_or_default()
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ScriptError {}

impl From<ScriptError> for crate::error::AppError {
    fn from(e: ScriptError) -> Self {
        Self::BadRequest {
            code: ErrorCode::InvalidRequest,
            message: format!("The script is not valid: {e}"),
            details: Some(e.details()),
        }
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        if self.0.len() < MAX_PROBLEMS {
            self.0.push(Problem {
                field: field.into(),
                message: message.into(),
            });
        }
    }

    fn finish(self) -> Result<(), ScriptError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ScriptError { problems: self.0 })
        }
    }
}

/// Finds `name` among `known`, ignoring case and surrounding space, and returns the known spelling.
fn find_speaker<'a, S: AsRef<str>>(known: &'a [S], name: &str) -> Option<&'a str> {
    let name = name.trim();
    known
        .iter()
        .map(AsRef::as_ref)
        .find(|k| *k == name)
        .or_else(|| {
            let lower = name.to_lowercase();
            known
                .iter()
                .map(AsRef::as_ref)
                .find(|k| k.trim().to_lowercase() == lower)
        })
}

impl Script {
    /// Every line in order, across chapters.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.chapters.iter().flat_map(|c| c.lines.iter())
    }

    pub fn line_count(&self) -> usize {
        self.chapters.iter().map(|c| c.lines.len()).sum()
    }

    /// Characters of spoken text (what synthesis is limited and billed by).
    pub fn char_count(&self) -> usize {
        self.lines().map(|l| l.text.chars().count()).sum()
    }

    /// Speaker names in order of first appearance.
    pub fn speakers(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for line in self.lines() {
            if !seen.contains(&line.speaker.as_str()) {
                seen.push(&line.speaker);
            }
        }
        seen
    }

    pub fn to_flat(&self) -> FlatScript {
        let mut lines = Vec::with_capacity(self.line_count());
        for (ci, chapter) in self.chapters.iter().enumerate() {
            for (li, line) in chapter.lines.iter().enumerate() {
                let starts_chapter = li == 0 && !(ci == 0 && chapter.title.is_empty());
                lines.push(FlatLine {
                    speaker: line.speaker.clone(),
                    text: line.text.clone(),
                    chapter: starts_chapter.then(|| chapter.title.clone()),
                });
            }
        }
        FlatScript { lines }
    }

    /// Trims speakers and titles, spells each speaker as in `known` when it matches ignoring
    /// case (so "alice " from a model or a paste becomes "Alice"), and puts each text in the
    /// form it is spoken in ([`crate::speech::text::spoken`]); a text that breaks that rule is
    /// left as it came for [`Script::validate`] to report.
    pub fn normalize<S: AsRef<str>>(&mut self, known: &[S]) {
        for chapter in &mut self.chapters {
            chapter.title = chapter.title.trim().to_string();
            for line in &mut chapter.lines {
                line.speaker = match find_speaker(known, &line.speaker) {
                    Some(k) => k.to_string(),
                    None => line.speaker.trim().to_string(),
                };
                if let Ok(text) = spoken(&line.text) {
                    line.text = text;
                }
            }
        }
    }

    /// Checks the script against the speakers of the episode and the limits. Field names in
    /// problems index the flat line list, which is what API clients send.
    pub fn validate<S: AsRef<str>>(
        &self,
        speakers: &[S],
        limits: &ScriptLimits,
    ) -> Result<(), ScriptError> {
        let mut problems = Problems(Vec::new());
        if speakers.is_empty() {
            problems.push("speakers", "at least one speaker is needed");
        }
        for (i, s) in speakers.iter().enumerate() {
            let name = s.as_ref();
            if name.trim().is_empty() {
                problems.push(format!("speakers[{i}].name"), "must not be empty");
            } else if name.contains([':', '：', '\n']) {
                problems.push(
                    format!("speakers[{i}].name"),
                    "must not contain a colon or a line break",
                );
            } else if name.chars().any(char::is_control) {
                problems.push(
                    format!("speakers[{i}].name"),
                    "must not contain control characters",
                );
            } else if speakers[..i]
                .iter()
                .any(|o| o.as_ref().trim().to_lowercase() == name.trim().to_lowercase())
            {
                problems.push(
                    format!("speakers[{i}].name"),
                    format!("\"{name}\" is listed twice"),
                );
            }
        }
        if self.line_count() == 0 {
            problems.push("lines", "the script has no lines");
        }
        let mut index = 0;
        for (ci, chapter) in self.chapters.iter().enumerate() {
            if chapter.lines.is_empty() {
                problems.push(format!("chapters[{ci}].lines"), "a chapter needs lines");
            }
            // Titles are not spoken, but they reach the feed, the subtitles and the MP3's tags.
            if chapter.title.chars().any(char::is_control) {
                problems.push(
                    format!("lines[{index}].chapter"),
                    "must not contain control characters",
                );
            }
            for line in &chapter.lines {
                if !speakers.iter().any(|s| s.as_ref() == line.speaker) {
                    problems.push(
                        format!("lines[{index}].speaker"),
                        format!("unknown speaker \"{}\"", line.speaker),
                    );
                }
                if let Err(problem) = spoken(&line.text) {
                    problems.push(format!("lines[{index}].text"), problem.to_string());
                }
                index += 1;
            }
        }
        let chars = self.char_count();
        if chars > limits.max_chars {
            problems.push(
                "lines",
                format!(
                    "the script has {chars} characters; at most {} are allowed",
                    limits.max_chars
                ),
            );
        }
        problems.finish()
    }

    /// The pasted-dialogue form that [`parse_dialogue`] reads back: `## Title` lines and
    /// `Speaker: text` lines, a blank line between chapters. Line breaks inside a text become spaces.
    pub fn to_dialogue_text(&self) -> String {
        let mut out = String::new();
        for (ci, chapter) in self.chapters.iter().enumerate() {
            if ci > 0 {
                out.push('\n');
            }
            if !(ci == 0 && chapter.title.is_empty()) {
                out.push_str("## ");
                out.push_str(&one_line(&chapter.title));
                out.push('\n');
            }
            for line in &chapter.lines {
                out.push_str(&line.speaker);
                out.push_str(": ");
                out.push_str(&one_line(&line.text));
                out.push('\n');
            }
        }
        out
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl FlatScript {
    /// Chapters from the `chapter` markers; lines before the first marker form an untitled chapter.
    pub fn into_script(self) -> Script {
        let mut chapters: Vec<Chapter> = Vec::new();
        for line in self.lines {
            let new_chapter = line.chapter.is_some() || chapters.is_empty();
            if new_chapter {
                chapters.push(Chapter {
                    title: line.chapter.unwrap_or_default(),
                    lines: Vec::new(),
                });
            }
            if let Some(chapter) = chapters.last_mut() {
                chapter.lines.push(Line {
                    speaker: line.speaker,
                    text: line.text,
                });
            }
        }
        Script { chapters }
    }
}

/// Longest text before a colon that is still taken as a speaker name; longer ones are prose.
const MAX_NAME_CHARS: usize = 40;
/// Most words in a speaker name ("Dr. Mary Ann Smith"); more reads as a sentence.
const MAX_NAME_WORDS: usize = 4;

/// Splits `Name: text` (ASCII or full-width colon) when the part before the colon looks like a
/// name. Markdown bold around the name (`**Alice:**`, `**Alice**:`) is dropped.
fn split_speaker(line: &str) -> Option<(&str, &str)> {
    let at = line.find([':', '：'])?;
    let colon_len = line[at..].chars().next().map_or(1, char::len_utf8);
    let raw_name = line[..at].trim();
    let name = raw_name.trim_matches('*').trim();
    let rest = &line[at + colon_len..];
    // "https://…" and "at 10:30" are prose, not speaker lines.
    let clock = raw_name.ends_with(|c: char| c.is_ascii_digit())
        && rest.starts_with(|c: char| c.is_ascii_digit());
    if rest.starts_with("//") || clock || !name.chars().any(char::is_alphabetic) {
        return None;
    }
    if name.chars().count() > MAX_NAME_CHARS
        || name.split_whitespace().count() > MAX_NAME_WORDS
        || name.starts_with('#')
    {
        return None;
    }
    let rest = match rest.strip_prefix("**") {
        Some(after_bold) if raw_name.starts_with("**") => after_bold,
        _ => rest,
    };
    Some((name, rest.trim()))
}

/// `## Title` (1 to 6 `#`, then a space or the end of the line) → the title.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    if rest.is_empty() || rest.starts_with(char::is_whitespace) {
        Some(rest.trim())
    } else {
        None
    }
}

/// Parses a pasted dialogue: `Name: text` lines (also `Name：text`), `## Chapter title` lines
/// that start chapters, blank lines ignored, and lines without a name continuing the previous
/// line. With a non-empty `known` list, names are matched ignoring case and spelled as listed,
/// and unknown names are reported with their line numbers; with an empty list any name is taken.
pub fn parse_dialogue<S: AsRef<str>>(input: &str, known: &[S]) -> Result<Script, ScriptError> {
    let mut chapters: Vec<Chapter> = Vec::new();
    let mut problems = Problems(Vec::new());
    // Whether the last line read was a speaker line that a continuation may extend.
    let mut open_line = false;
    for (i, raw) in input.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(title) = heading(line) {
            chapters.push(Chapter {
                title: title.to_string(),
                lines: Vec::new(),
            });
            open_line = false;
            continue;
        }
        if let Some((name, text)) = split_speaker(line) {
            let speaker = if known.is_empty() {
                Some(name)
            } else {
                find_speaker(known, name)
            };
            match speaker {
                Some(speaker) => {
                    if chapters.is_empty() {
                        chapters.push(Chapter::default());
                    }
                    if let Some(chapter) = chapters.last_mut() {
                        chapter.lines.push(Line {
                            speaker: speaker.to_string(),
                            text: text.to_string(),
                        });
                    }
                    open_line = true;
                }
                None => {
                    problems.push(
                        format!("line {number}"),
                        format!("unknown speaker \"{name}\""),
                    );
                    open_line = false;
                }
            }
            continue;
        }
        let last = chapters.last_mut().and_then(|c| c.lines.last_mut());
        match last {
            Some(last) if open_line => {
                if !last.text.is_empty() {
                    last.text.push(' ');
                }
                last.text.push_str(line);
            }
            _ => problems.push(
                format!("line {number}"),
                "expected \"Name: text\" or \"## Chapter title\"",
            ),
        }
    }
    let script = Script { chapters };
    if problems.0.is_empty() {
        if script.line_count() == 0 {
            return Err(ScriptError::single(
                "text",
                "no dialogue lines found; write one \"Name: text\" line per turn",
            ));
        }
        let mut index = 0;
        let mut number_of = Vec::new();
        for chapter in &script.chapters {
            if chapter.lines.is_empty() {
                problems.push(
                    "text",
                    format!("chapter \"{}\" has no lines", chapter.title),
                );
            }
            for line in &chapter.lines {
                if line.text.is_empty() {
                    number_of.push(index);
                }
                index += 1;
            }
        }
        for index in number_of {
            problems.push(
                format!("lines[{index}].text"),
                "a line has a speaker but no text",
            );
        }
    }
    problems.finish().map(|()| script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(speaker: &str, text: &str) -> Line {
        Line {
            speaker: speaker.into(),
            text: text.into(),
        }
    }

    const HOSTS: &[&str] = &["Alice", "Bob"];

    #[test]
    fn a_pasted_dialogue_becomes_chapters_of_lines() {
        let text = "Alice: Welcome to the show.\nBob：你好！\n\n## The news\nalice: First item\n  it continues here.\n**Bob:** Right.\n";
        let script = parse_dialogue(text, HOSTS).unwrap();
        assert_eq!(
            script,
            Script {
                chapters: vec![
                    Chapter {
                        title: String::new(),
                        lines: vec![line("Alice", "Welcome to the show."), line("Bob", "你好！")],
                    },
                    Chapter {
                        title: "The news".into(),
                        lines: vec![
                            line("Alice", "First item it continues here."),
                            line("Bob", "Right."),
                        ],
                    },
                ]
            }
        );
    }

    #[test]
    fn unknown_speakers_are_reported_with_their_line_numbers() {
        let err = parse_dialogue("Alice: hi\n\nCarol: hello\nDave: hey\n", HOSTS).unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                Problem {
                    field: "line 3".into(),
                    message: "unknown speaker \"Carol\"".into()
                },
                Problem {
                    field: "line 4".into(),
                    message: "unknown speaker \"Dave\"".into()
                },
            ]
        );
        assert_eq!(err.details()["line 3"], "unknown speaker \"Carol\"");
    }

    #[test]
    fn without_a_speaker_list_any_name_is_taken() {
        let script = parse_dialogue::<&str>("Carol: hi\nDave: hello", &[]).unwrap();
        assert_eq!(script.speakers(), vec!["Carol", "Dave"]);
    }

    #[test]
    fn text_before_any_speaker_or_without_dialogue_is_an_error() {
        let err = parse_dialogue("just some prose\nAlice: hi", HOSTS).unwrap_err();
        assert_eq!(err.problems[0].field, "line 1");
        let err = parse_dialogue("\n\n  \n", HOSTS).unwrap_err();
        assert_eq!(err.problems[0].field, "text");
        let err = parse_dialogue("## Intro\n", HOSTS).unwrap_err();
        assert_eq!(err.problems[0].field, "text");
    }

    #[test]
    fn prose_with_colons_continues_the_previous_line() {
        let text = "Alice: The plan\nis simple, as the author put it in the preface: keep going\nsee https://example.com\nat 10:30 sharp";
        let script = parse_dialogue(text, HOSTS).unwrap();
        assert_eq!(script.line_count(), 1);
        assert_eq!(
            script.chapters[0].lines[0].text,
            "The plan is simple, as the author put it in the preface: keep going see https://example.com at 10:30 sharp"
        );
    }

    #[test]
    fn a_speaker_line_without_text_is_reported() {
        let err = parse_dialogue("Alice:\nBob: hi", HOSTS).unwrap_err();
        assert_eq!(err.problems[0].field, "lines[0].text");
        // A continuation fills it in.
        let script = parse_dialogue("Alice:\n  hello there\nBob: hi", HOSTS).unwrap();
        assert_eq!(script.chapters[0].lines[0].text, "hello there");
    }

    #[test]
    fn validation_reports_every_problem_by_field() {
        let script = Script {
            chapters: vec![Chapter {
                title: "One".into(),
                lines: vec![line("Alice", "hi"), line("Mallory", "x"), line("Bob", "  ")],
            }],
        };
        let err = script
            .validate(HOSTS, &ScriptLimits::default())
            .unwrap_err();
        let details = err.details();
        assert_eq!(details["lines[1].speaker"], "unknown speaker \"Mallory\"");
        assert_eq!(details["lines[2].text"], "must not be empty");
        assert_eq!(err.problems.len(), 2);

        let bad = Script {
            chapters: vec![
                Chapter {
                    title: String::new(),
                    lines: vec![line("Alice", "hi")],
                },
                Chapter {
                    title: "Two\u{0}".into(),
                    lines: vec![line("Bob", "hello")],
                },
            ],
        };
        let err = bad
            .validate(&["Alice", "Bob\u{7}"], &ScriptLimits::default())
            .unwrap_err();
        let details = err.details();
        assert_eq!(
            details["lines[1].chapter"],
            "must not contain control characters"
        );
        assert_eq!(
            details["speakers[1].name"],
            "must not contain control characters"
        );

        let err = script
            .validate::<&str>(&[], &ScriptLimits::default())
            .unwrap_err();
        assert_eq!(
            err.details()["speakers"],
            "at least one speaker is needed",
            "{err}"
        );
    }

    #[test]
    fn validation_limits_total_characters_and_checks_speaker_names() {
        let script = Script {
            chapters: vec![Chapter {
                title: String::new(),
                lines: vec![line("Alice", "0123456789"), line("Bob", "01234")],
            }],
        };
        assert!(
            script
                .validate(HOSTS, &ScriptLimits { max_chars: 15 })
                .is_ok()
        );
        let err = script
            .validate(HOSTS, &ScriptLimits { max_chars: 14 })
            .unwrap_err();
        assert_eq!(
            err.details()["lines"],
            "the script has 15 characters; at most 14 are allowed"
        );
        let err = script
            .validate(&["Alice", "Bob", "bob", "A: B"], &ScriptLimits::default())
            .unwrap_err();
        assert_eq!(err.details()["speakers[2].name"], "\"bob\" is listed twice");
        assert!(err.details()["speakers[3].name"].is_string());
    }

    #[test]
    fn an_empty_script_and_an_empty_chapter_are_invalid() {
        let err = Script::default()
            .validate(HOSTS, &ScriptLimits::default())
            .unwrap_err();
        assert_eq!(err.details()["lines"], "the script has no lines");
        let script = Script {
            chapters: vec![
                Chapter {
                    title: "A".into(),
                    lines: vec![line("Alice", "hi")],
                },
                Chapter {
                    title: "B".into(),
                    lines: vec![],
                },
            ],
        };
        let err = script
            .validate(HOSTS, &ScriptLimits::default())
            .unwrap_err();
        assert!(err.details()["chapters[1].lines"].is_string());
    }

    #[test]
    fn normalize_spells_speakers_as_listed_and_trims() {
        let mut script = Script {
            chapters: vec![Chapter {
                title: " Intro ".into(),
                lines: vec![line(" alice ", " hi "), line("BOB", "yo")],
            }],
        };
        script.normalize(HOSTS);
        assert_eq!(script.chapters[0].title, "Intro");
        assert_eq!(
            script.chapters[0].lines,
            vec![line("Alice", "hi"), line("Bob", "yo")]
        );
        assert!(script.validate(HOSTS, &ScriptLimits::default()).is_ok());
    }

    #[test]
    fn the_flat_view_marks_chapter_starts_and_serializes_like_the_api() {
        let script = Script {
            chapters: vec![
                Chapter {
                    title: String::new(),
                    lines: vec![line("Alice", "a")],
                },
                Chapter {
                    title: "Two".into(),
                    lines: vec![line("Bob", "b"), line("Alice", "c")],
                },
            ],
        };
        let flat = script.to_flat();
        assert_eq!(
            serde_json::to_value(&flat).unwrap(),
            serde_json::json!({"lines": [
                {"speaker": "Alice", "text": "a"},
                {"speaker": "Bob", "text": "b", "chapter": "Two"},
                {"speaker": "Alice", "text": "c"},
            ]})
        );
        assert_eq!(flat.into_script(), script);
        let plain: FlatScript =
            serde_json::from_str(r#"{"lines":[{"speaker":"Alice","text":"x"}]}"#).unwrap();
        assert_eq!(plain.into_script().chapters[0].title, "");
    }

    #[test]
    fn rendering_writes_headings_and_speaker_lines() {
        let script = Script {
            chapters: vec![
                Chapter {
                    title: String::new(),
                    lines: vec![line("Alice", "a\nb")],
                },
                Chapter {
                    title: "Two".into(),
                    lines: vec![line("Bob", "c")],
                },
            ],
        };
        assert_eq!(script.to_dialogue_text(), "Alice: a b\n\n## Two\nBob: c\n");
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["Alice", "Bob", "Dr. Chen", "小明", "María José"])
            .prop_map(String::from)
    }

    /// Single-line text as a parser would read it back: trimmed, no empty text.
    fn text() -> impl Strategy<Value = String> {
        "[^\\r\\n\\u{85}\\u{2028}\\u{2029}]{1,60}"
            .prop_map(|s| one_line(&s))
            .prop_filter("non-empty", |s| !s.is_empty())
    }

    fn title() -> impl Strategy<Value = String> {
        text()
    }

    fn script() -> impl Strategy<Value = Script> {
        let lines = prop::collection::vec(
            (name(), text()).prop_map(|(speaker, text)| Line { speaker, text }),
            1..6,
        );
        (any::<bool>(), prop::collection::vec((title(), lines), 1..5)).prop_map(
            |(untitled_first, chapters)| Script {
                chapters: chapters
                    .into_iter()
                    .enumerate()
                    .map(|(i, (title, lines))| Chapter {
                        title: if i == 0 && untitled_first {
                            String::new()
                        } else {
                            title
                        },
                        lines,
                    })
                    .collect(),
            },
        )
    }

    proptest! {
        #[test]
        fn parsing_a_rendered_script_gives_it_back(script in script()) {
            let names = ["Alice", "Bob", "Dr. Chen", "小明", "María José"];
            let text = script.to_dialogue_text();
            prop_assert_eq!(parse_dialogue(&text, &names).unwrap(), script.clone());
            prop_assert_eq!(script.to_flat().into_script(), script);
        }

        #[test]
        fn the_parser_never_panics(input in "(?s).{0,400}") {
            let _ = parse_dialogue(&input, HOSTS);
            let _ = parse_dialogue::<&str>(&input, &[]);
        }

        #[test]
        fn the_parser_never_panics_on_dialogue_like_input(
            input in prop::collection::vec(
                prop::sample::select(vec!["Alice:", "bob：", "## ", "#", "**", ":", "：", " ", "\n", "x", "é", "10:30", "//"]),
                0..60,
            )
        ) {
            let text: String = input.concat();
            if let Ok(script) = parse_dialogue(&text, HOSTS) {
                prop_assert!(script.validate(HOSTS, &ScriptLimits::default()).is_ok());
            }
        }
    }
}
