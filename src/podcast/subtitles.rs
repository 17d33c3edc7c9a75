//! Subtitles and chapters from measured line timings: WebVTT, SRT and Podcasting 2.0 JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One spoken line where it landed in the episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedLine {
    pub speaker: String,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedChapter {
    pub title: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Longest cue text: two subtitle rows of about 42 characters, the common broadcast guideline.
pub const MAX_CUE_CHARS: usize = 84;

/// One subtitle cue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue<'a> {
    pub speaker: &'a str,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Cues in time order; a long line becomes several cues that share its time in proportion to
/// their length.
pub fn cues(lines: &[TimedLine]) -> Vec<Cue<'_>> {
    let mut ordered: Vec<&TimedLine> = lines.iter().collect();
    ordered.sort_by_key(|l| (l.start_ms, l.end_ms));
    let mut out = Vec::new();
    for line in ordered {
        let pieces = split_text(&line.text, MAX_CUE_CHARS);
        let total: u64 = pieces.iter().map(|p| p.chars().count() as u64).sum();
        let span = line.end_ms.saturating_sub(line.start_ms);
        let mut done = 0u64;
        for piece in pieces {
            let start = line.start_ms + span * done / total.max(1);
            done += piece.chars().count() as u64;
            let end = line.start_ms + span * done / total.max(1);
            out.push(Cue {
                speaker: &line.speaker,
                text: piece,
                start_ms: start,
                end_ms: end,
            });
        }
    }
    out
}

/// Whether a character is written without spaces between words (CJK scripts).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF)
}

fn ends_sentence(s: &str) -> bool {
    s.ends_with(['.', '!', '?', '。', '！', '？', '…', ';', '；'])
}

fn ends_clause(s: &str) -> bool {
    ends_sentence(s) || s.ends_with([',', '，', '、', ':', '：'])
}

/// Breaks text into pieces of at most `max` characters, preferring sentence ends, then clause
/// ends, then word gaps; CJK text breaks between characters; a single over-long word is cut.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Vec::new();
    }
    if text.chars().count() <= max {
        return vec![text];
    }
    // Atoms: a word (with its trailing punctuation) or a single CJK character; `spaced` says
    // whether a space separates it from the previous atom.
    let mut atoms: Vec<(String, bool)> = Vec::new();
    let mut spaced = false;
    for c in text.chars() {
        if c == ' ' {
            spaced = true;
            continue;
        }
        let joins_previous = !is_cjk(c)
            && !spaced
            && atoms.last().is_some_and(|(a, _)| {
                !a.chars().last().is_some_and(is_cjk) || !c.is_alphanumeric()
            });
        match atoms.last_mut() {
            Some((atom, _)) if joins_previous => atom.push(c),
            _ => atoms.push((c.to_string(), spaced)),
        }
        spaced = false;
    }
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for (atom, spaced) in atoms {
        let mut atom_chars: Vec<char> = atom.chars().collect();
        let sep = usize::from(spaced && current_len > 0);
        if current_len + sep + atom_chars.len() > max && current_len > 0 {
            // Break at the last clause end in the second half of the piece, if there is one.
            let (head, tail) = split_at_clause(&current, max / 2);
            pieces.push(head);
            current = tail;
            current_len = current.chars().count();
        }
        while atom_chars.len() > max {
            if current_len > 0 {
                pieces.push(std::mem::take(&mut current));
                current_len = 0;
            }
            pieces.push(atom_chars.drain(..max).collect());
        }
        let sep = spaced && current_len > 0;
        if current_len + usize::from(sep) + atom_chars.len() > max {
            pieces.push(std::mem::take(&mut current));
            current_len = 0;
        }
        if spaced && current_len > 0 {
            current.push(' ');
            current_len += 1;
        }
        current.extend(atom_chars.iter());
        current_len += atom_chars.len();
        if ends_sentence(&current) && current_len >= max / 2 {
            pieces.push(std::mem::take(&mut current));
            current_len = 0;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Splits `piece` after its last clause end that leaves at least `min_head` characters in the
/// head; otherwise keeps it whole.
fn split_at_clause(piece: &str, min_head: usize) -> (String, String) {
    let mut best = None;
    let mut count = 0;
    for (i, c) in piece.char_indices() {
        count += 1;
        let end = i + c.len_utf8();
        if count >= min_head && ends_clause(&piece[..end]) && end < piece.len() {
            best = Some(end);
        }
    }
    match best {
        Some(at) => (
            piece[..at].trim().to_string(),
            piece[at..].trim().to_string(),
        ),
        None => (piece.to_string(), String::new()),
    }
}

/// `HH:MM:SS<sep>mmm`, hours always present (valid in both formats).
fn timestamp(ms: u64, sep: char) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

/// Escapes what WebVTT cue text treats as markup.
fn vtt_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// WebVTT with a `<v Speaker>` voice span on each cue; a line without a speaker (an empty
/// one) has none.
pub fn to_vtt(lines: &[TimedLine]) -> String {
    let mut out = String::from("WEBVTT\n");
    for (i, cue) in cues(lines).iter().enumerate() {
        let _ = write!(
            out,
            "\n{}\n{} --> {}\n",
            i + 1,
            timestamp(cue.start_ms, '.'),
            timestamp(cue.end_ms, '.'),
        );
        let speaker = cue.speaker.trim();
        if !speaker.is_empty() {
            let _ = write!(out, "<v {}>", vtt_escape(speaker));
        }
        let _ = writeln!(out, "{}", vtt_escape(&cue.text));
    }
    out
}

/// SRT with `Speaker: text` cues; a line without a speaker is its text alone.
pub fn to_srt(lines: &[TimedLine]) -> String {
    let mut out = String::new();
    for (i, cue) in cues(lines).iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n",
            i + 1,
            timestamp(cue.start_ms, ','),
            timestamp(cue.end_ms, ','),
        );
        let speaker = cue.speaker.trim();
        if !speaker.is_empty() {
            let _ = write!(out, "{speaker}: ");
        }
        let _ = write!(out, "{}\n\n", cue.text);
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonChapters<'a> {
    version: &'static str,
    chapters: Vec<JsonChapter<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonChapter<'a> {
    start_time: f64,
    end_time: f64,
    title: &'a str,
}

/// The Podcasting 2.0 JSON chapters file (`application/json+chapters`), times in seconds.
pub fn to_chapters_json(chapters: &[TimedChapter]) -> String {
    let mut ordered: Vec<&TimedChapter> = chapters.iter().collect();
    ordered.sort_by_key(|c| c.start_ms);
    let doc = JsonChapters {
        version: "1.2.0",
        chapters: ordered
            .into_iter()
            .map(|c| JsonChapter {
                start_time: c.start_ms as f64 / 1000.0,
                end_time: c.end_ms as f64 / 1000.0,
                title: &c.title,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(speaker: &str, text: &str, start_ms: u64, end_ms: u64) -> TimedLine {
        TimedLine {
            speaker: speaker.into(),
            text: text.into(),
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn lines_without_a_speaker_have_no_voice_span_or_name() {
        let lines = [line("", "Just words.", 0, 1000)];
        assert_eq!(
            to_vtt(&lines),
            "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nJust words.\n"
        );
        assert_eq!(
            to_srt(&lines),
            "1\n00:00:00,000 --> 00:00:01,000\nJust words.\n\n"
        );
    }

    #[test]
    fn vtt_has_voice_spans_and_dotted_timestamps() {
        let vtt = to_vtt(&[
            line("Alice", "Hello there.", 0, 1500),
            line("Bob", "Hi!", 1850, 3_723_004),
        ]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\n<v Alice>Hello there.\n\n2\n00:00:01.850 --> 01:02:03.004\n<v Bob>Hi!\n"
        );
    }

    #[test]
    fn srt_labels_speakers_and_uses_comma_millis() {
        let srt = to_srt(&[line("Alice", "A & B <ok>", 250, 1500)]);
        assert_eq!(
            srt,
            "1\n00:00:00,250 --> 00:00:01,500\nAlice: A & B <ok>\n\n"
        );
    }

    #[test]
    fn vtt_escapes_markup_in_text_and_speaker_names() {
        let vtt = to_vtt(&[line("R&D <team>", "1 < 2 && 3 > 2 --> done", 0, 1000)]);
        assert!(
            vtt.contains("<v R&amp;D &lt;team&gt;>1 &lt; 2 &amp;&amp; 3 &gt; 2 --&gt; done\n"),
            "{vtt}"
        );
        assert_eq!(vtt.matches("-->").count(), 1, "only the timing arrow");
    }

    #[test]
    fn cues_come_out_in_time_order() {
        let vtt = to_vtt(&[
            line("Bob", "second", 2000, 3000),
            line("Alice", "first", 0, 1000),
        ]);
        assert!(vtt.find("first").unwrap() < vtt.find("second").unwrap());
        assert!(vtt.starts_with("WEBVTT\n\n1\n00:00:00.000"));
    }

    #[test]
    fn a_long_line_is_split_into_cues_that_share_its_time() {
        let text = "This is the first sentence of a long answer, and it keeps going for a while. \
                    Then a second sentence follows with more words in it than fit in one cue. Short end.";
        let lines = [line("Alice", text, 10_000, 20_000)];
        let cues = cues(&lines);
        assert!(cues.len() >= 2, "{cues:?}");
        assert_eq!(cues[0].start_ms, 10_000);
        assert_eq!(cues.last().unwrap().end_ms, 20_000);
        for pair in cues.windows(2) {
            assert_eq!(pair[0].end_ms, pair[1].start_ms, "cues are back to back");
        }
        for cue in &cues {
            assert!(cue.text.chars().count() <= MAX_CUE_CHARS, "{cue:?}");
            assert_eq!(cue.speaker, "Alice");
            // Time in proportion to length, within rounding.
            let share = (cue.end_ms - cue.start_ms) as f64 / 10_000.0;
            let expected = cue.text.chars().count() as f64
                / cues.iter().map(|c| c.text.chars().count()).sum::<usize>() as f64;
            assert!((share - expected).abs() < 0.01, "{cue:?}");
        }
        assert_eq!(
            cues[0].text,
            "This is the first sentence of a long answer, and it keeps going for a while."
        );
        let words: Vec<String> = cues.iter().map(|c| c.text.clone()).collect();
        assert_eq!(
            words.join(" "),
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }

    #[test]
    fn chinese_text_is_split_between_characters_at_punctuation() {
        let text = "今天我们来聊一聊茶叶的历史，它从中国西南出发，经过丝绸之路传到世界各地。后来，英国人把下午茶变成了一种生活方式，一直流传到今天，成为了许多人每天都离不开的习惯。";
        let pieces = split_text(text, 40);
        assert!(pieces.len() >= 2, "{pieces:?}");
        assert_eq!(pieces.concat(), text);
        assert!(pieces[0].ends_with(['。', '，']), "{pieces:?}");
        assert!(pieces.iter().all(|p| p.chars().count() <= 40));
    }

    #[test]
    fn chapters_json_follows_podcasting_2_0() {
        let json = to_chapters_json(&[
            TimedChapter {
                title: "News & \"views\"".into(),
                start_ms: 61_500,
                end_ms: 120_000,
            },
            TimedChapter {
                title: "Intro".into(),
                start_ms: 0,
                end_ms: 61_500,
            },
        ]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": "1.2.0", "chapters": [
                {"startTime": 0.0, "endTime": 61.5, "title": "Intro"},
                {"startTime": 61.5, "endTime": 120.0, "title": "News & \"views\""},
            ]})
        );
    }

    proptest! {
        #[test]
        fn splitting_keeps_every_word_and_respects_the_limit(
            text in "[a-z ,.!?\u{4e00}-\u{4e20}。，]{0,300}",
            max in 10usize..100,
        ) {
            let pieces = split_text(&text, max);
            for p in &pieces {
                prop_assert!(p.chars().count() <= max, "{:?}", p);
                prop_assert!(!p.is_empty());
            }
            let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(squash(&pieces.concat()), squash(&text));
        }
    }
}
