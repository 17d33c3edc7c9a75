//! A transcript as it is downloaded (SRT, WebVTT, plain text) and as OpenAI's transcription
//! endpoints answer (`json`, `verbose_json`): pure functions of the [`Transcript`].

use serde_json::{Value, json};

use crate::podcast::subtitles::{self, TimedLine};
use crate::providers::asr::{Segment, Task, Transcript, language_name, segments_from_words};

/// The timed lines subtitles are made of: the segments, else segments grouped from the words,
/// else the whole text over the whole audio. A segment's speaker becomes the cue's voice.
fn lines(t: &Transcript) -> Vec<TimedLine> {
    let grouped;
    let segments: &[Segment] = if !t.segments.is_empty() {
        &t.segments
    } else if !t.words.is_empty() {
        grouped = segments_from_words(&t.words);
        &grouped
    } else if !t.text.trim().is_empty() {
        grouped = vec![Segment {
            start: 0.0,
            end: t.duration,
            text: t.text.clone(),
            speaker: None,
        }];
        &grouped
    } else {
        &[]
    };
    segments
        .iter()
        .map(|s| TimedLine {
            speaker: s.speaker.clone().unwrap_or_default(),
            text: s.text.clone(),
            start_ms: to_ms(s.start),
            end_ms: to_ms(s.end),
        })
        .collect()
}

fn to_ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}

/// SubRip subtitles, one cue per segment (long ones cut to readable cues).
pub fn srt(t: &Transcript) -> String {
    subtitles::to_srt(&lines(t))
}

/// WebVTT subtitles; a speaker the provider told apart is the cue's voice (`<v speaker_0>`).
pub fn vtt(t: &Transcript) -> String {
    subtitles::to_vtt(&lines(t))
}

/// The text alone, ending with a newline.
pub fn text(t: &Transcript) -> String {
    let mut out = t.text.trim().to_string();
    out.push('\n');
    out
}

/// Whole seconds of audio, rounded up: OpenAI's `usage` of a transcription.
fn usage(t: &Transcript) -> Value {
    json!({"type": "duration", "seconds": t.duration.max(0.0).ceil() as u64})
}

/// OpenAI's `json` answer: `{text, usage}`.
pub fn openai_json(t: &Transcript) -> Value {
    json!({"text": t.text, "usage": usage(t)})
}

/// OpenAI's `verbose_json` answer: `{task, language, duration, text, segments, words}` with
/// Whisper's language names and segment fields. Segments come unless only words were asked
/// for; words only when asked for.
pub fn openai_verbose(t: &Transcript, task: Task, words: bool, segments: bool) -> Value {
    let language = t
        .language
        .as_deref()
        .map(|code| language_name(code).unwrap_or(code))
        .unwrap_or("english");
    let mut answer = json!({
        "task": match task { Task::Transcribe => "transcribe", Task::Translate => "translate" },
        "language": language,
        "duration": t.duration,
        "text": t.text,
        "usage": usage(t),
    });
    if segments || !words {
        answer["segments"] = lines_or_segments(t)
            .iter()
            .enumerate()
            .map(|(id, s)| {
                json!({
                    "id": id, "seek": 0, "start": s.start, "end": s.end,
                    "text": format!(" {}", s.text), "tokens": [], "temperature": 0.0,
                    "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0,
                })
            })
            .collect();
    }
    if words {
        answer["words"] = t
            .words
            .iter()
            .map(|w| json!({"word": w.word, "start": w.start, "end": w.end}))
            .collect();
    }
    answer
}

/// The segments, else those grouped from the words.
fn lines_or_segments(t: &Transcript) -> Vec<Segment> {
    if t.segments.is_empty() {
        segments_from_words(&t.words)
    } else {
        t.segments.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::asr::Word;

    fn word(start: f64, end: f64, w: &str, speaker: Option<&str>) -> Word {
        Word {
            start,
            end,
            word: w.into(),
            speaker: speaker.map(Into::into),
        }
    }

    fn transcript() -> Transcript {
        Transcript {
            language: Some("en".into()),
            duration: 3725.5,
            text: "Hello there. General Kenobi <3".into(),
            segments: vec![
                Segment {
                    start: 0.0,
                    end: 1.25,
                    text: "Hello there.".into(),
                    speaker: Some("speaker_0".into()),
                },
                Segment {
                    start: 3723.0,
                    end: 3725.5,
                    text: "General Kenobi <3".into(),
                    speaker: Some("speaker_1".into()),
                },
            ],
            words: vec![word(0.0, 0.5, "Hello", Some("speaker_0"))],
            model: "scribe_v1".into(),
        }
    }

    #[test]
    fn srt_numbers_cues_with_comma_timestamps_and_names_speakers() {
        assert_eq!(
            srt(&transcript()),
            "1\n00:00:00,000 --> 00:00:01,250\nspeaker_0: Hello there.\n\n\
             2\n01:02:03,000 --> 01:02:05,500\nspeaker_1: General Kenobi <3\n\n"
        );
    }

    #[test]
    fn vtt_marks_speakers_as_voices_and_escapes_markup() {
        assert_eq!(
            vtt(&transcript()),
            "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.250\n<v speaker_0>Hello there.\n\n\
             2\n01:02:03.000 --> 01:02:05.500\n<v speaker_1>General Kenobi &lt;3\n"
        );
    }

    #[test]
    fn subtitles_fall_back_to_words_then_to_the_whole_text() {
        let mut t = transcript();
        t.segments.clear();
        t.words = vec![
            word(0.0, 0.4, "One", None),
            word(0.5, 0.9, "two.", None),
            word(2.0, 2.4, "Three", None),
        ];
        assert_eq!(
            srt(&t),
            "1\n00:00:00,000 --> 00:00:00,900\nOne two.\n\n2\n00:00:02,000 --> 00:00:02,400\nThree\n\n"
        );
        t.words.clear();
        t.duration = 2.0;
        assert_eq!(
            vtt(&t),
            "WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.000\nHello there. General Kenobi &lt;3\n"
        );
        t.text.clear();
        assert_eq!(vtt(&t), "WEBVTT\n");
        assert_eq!(text(&t), "\n");
    }

    #[test]
    fn verbose_json_has_openai_s_shape_and_only_the_timestamps_asked_for() {
        let t = transcript();
        let v = openai_verbose(&t, Task::Transcribe, true, false);
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["language"], "english");
        assert_eq!(v["duration"], 3725.5);
        assert_eq!(
            v["words"][0],
            json!({"word": "Hello", "start": 0.0, "end": 0.5})
        );
        assert!(v.get("segments").is_none(), "only words were asked for");
        let v = openai_verbose(&t, Task::Translate, false, false);
        assert_eq!(v["task"], "translate");
        assert_eq!(v["segments"][1]["id"], 1);
        assert_eq!(v["segments"][1]["start"], 3723.0);
        assert_eq!(v["segments"][0]["text"], " Hello there.");
        assert!(v.get("words").is_none());
        assert_eq!(openai_json(&t)["usage"]["seconds"], 3726);
        assert_eq!(text(&t), "Hello there. General Kenobi <3\n");
    }
}
