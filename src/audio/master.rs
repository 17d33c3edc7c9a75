//! The whole pipeline in one call: provider outputs in, a finished file with its timings out.

use super::{
    AudioError, Chapter, Encoding, Format, Id3Tags, Joiner, Loudness, LoudnessTarget, Part, Peaks,
    Result, Span, conform, decode, encode, encode_mp3, measure, normalize,
};

/// One synthesized piece (a text chunk or a podcast line) as the provider returned it.
#[derive(Debug, Clone, Copy)]
pub struct SourcePart<'a> {
    pub bytes: &'a [u8],
    pub format: Format,
    /// Title of the chapter this part opens, if it opens one.
    pub chapter: Option<&'a str>,
}

/// Lossy encoding adds a little to the true peak (about 0.3 dB for speech in 64 kbps MP3), so
/// MP3 and Opus output is mastered this much under the ceiling and stays under it once decoded.
const LOSSY_TRUE_PEAK_HEADROOM_DB: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct MasterOptions {
    pub sample_rate: u32,
    pub channels: u16,
    /// Silence between parts.
    pub pause_ms: u32,
    /// Silence before a part that opens a chapter.
    pub chapter_pause_ms: u32,
    /// `None` keeps the providers' levels.
    pub loudness: Option<LoudnessTarget>,
    pub output: Encoding,
    pub peak_buckets: usize,
}

impl Default for MasterOptions {
    /// Speech podcast settings: 44.1 kHz mono (what every player expects; providers at 16-24
    /// kHz are upsampled, ElevenLabs' 44.1 kHz kept), 64 kbps MP3, -16 LUFS / -1 dBTP.
    fn default() -> Self {
        Self {
            sample_rate: 44_100,
            channels: 1,
            pause_ms: 350,
            chapter_pause_ms: 1000,
            loudness: Some(LoudnessTarget::default()),
            output: Encoding::Mp3 { bitrate_kbps: 64 },
            peak_buckets: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mastered {
    pub bytes: Vec<u8>,
    /// Where each part landed, in input order (for subtitles).
    pub spans: Vec<Span>,
    /// The chapters written into the ID3 tag, tiling the whole file from 0 when the first
    /// part opens a chapter.
    pub chapters: Vec<Chapter>,
    pub duration_ms: u64,
    pub peaks: Peaks,
    /// Of the finished audio, before encoding (MP3 is mastered 0.5 dB under the true-peak
    /// ceiling, which encoding eats into).
    pub loudness: Loudness,
}

/// Decodes every part, brings them to one rate and layout, joins them with pauses,
/// normalizes loudness, and encodes, adding ID3 tags and chapter frames to MP3 output.
/// Chapters come from the parts' `chapter` titles and replace any in `tags`.
pub fn master_episode(
    parts: &[SourcePart<'_>],
    options: &MasterOptions,
    tags: Option<&Id3Tags>,
) -> Result<Mastered> {
    if parts.is_empty() {
        return Err(AudioError::Invalid(
            "an episode needs at least one part".into(),
        ));
    }
    // One part decoded at a time: a long episode holds its result and one part, not all.
    let mut joiner = Joiner::new(
        options.sample_rate,
        options.channels,
        options.pause_ms,
        options.chapter_pause_ms,
    );
    for (i, part) in parts.iter().enumerate() {
        let pcm = decode(part.bytes, part.format).map_err(|e| match e {
            AudioError::Decode { format, reason } => AudioError::Decode {
                format,
                reason: format!("part {}: {reason}", i + 1),
            },
            other => other,
        })?;
        joiner.push(Part {
            pcm: conform(pcm, options.sample_rate, options.channels)?,
            new_chapter: part.chapter.is_some(),
        })?;
    }
    let mut joined = joiner.finish();
    let loudness = match options.loudness {
        Some(mut target) => {
            if options.output.is_lossy() {
                target.max_true_peak_dbtp -= LOSSY_TRUE_PEAK_HEADROOM_DB;
            }
            normalize(&mut joined.pcm, target)?.after
        }
        None => measure(&joined.pcm)?,
    };
    let duration_ms = joined.pcm.duration_ms();
    let chapters = chapters(parts, &joined.spans, duration_ms);

    let bytes = match options.output {
        Encoding::Mp3 { bitrate_kbps } => {
            let mut tags = tags.cloned().unwrap_or_default();
            if !chapters.is_empty() {
                tags.chapters = chapters.clone();
            }
            let tags = (tags != Id3Tags::default()).then_some(tags);
            encode_mp3(&joined.pcm, bitrate_kbps, tags.as_ref())?
        }
        other => encode(&joined.pcm, other)?,
    };
    Ok(Mastered {
        bytes,
        peaks: Peaks::of(&joined.pcm, options.peak_buckets),
        spans: joined.spans,
        chapters,
        duration_ms,
        loudness,
    })
}

fn chapters(parts: &[SourcePart<'_>], spans: &[Span], duration_ms: u64) -> Vec<Chapter> {
    let starts: Vec<(usize, &str)> = parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.chapter.map(|title| (i, title)))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &(i, title))| Chapter {
            title: title.to_string(),
            start_ms: if i == 0 { 0 } else { spans[i].start_ms },
            end_ms: starts
                .get(k + 1)
                .map_or(duration_ms, |&(next, _)| spans[next].start_ms),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{espeak, speech};
    use crate::audio::{Pcm, encode_wav, measure};

    fn wav(pcm: &Pcm) -> Vec<u8> {
        encode_wav(pcm).unwrap()
    }

    #[test]
    fn an_episode_from_mixed_providers_is_mastered_to_the_target() {
        // Three voices at three rates and formats, as from three providers.
        let a = wav(&speech(22_050, 2000, 0.2, 1));
        let b = encode_mp3(&speech(24_000, 1500, 0.6, 2), 64, None).unwrap();
        let c_pcm = speech(16_000, 1000, 0.9, 3);
        let c: Vec<u8> = c_pcm
            .samples
            .iter()
            .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
            .collect();
        let raw = Format::PcmS16Le {
            sample_rate: 16_000,
            channels: 1,
        };
        let parts = [
            SourcePart {
                bytes: &a,
                format: Format::Wav,
                chapter: Some("Hello"),
            },
            SourcePart {
                bytes: &b,
                format: Format::Mp3,
                chapter: None,
            },
            SourcePart {
                bytes: &c,
                format: raw,
                chapter: Some("Goodbye"),
            },
        ];
        let tags = Id3Tags {
            title: Some("Episode 1".into()),
            album: Some("Show".into()),
            ..Default::default()
        };
        let options = MasterOptions::default();
        let mastered = master_episode(&parts, &options, Some(&tags)).unwrap();

        // Timings: 2000 ms, pause 350, ~1500 ms (+ at most one MP3 frame), chapter pause 1000.
        let s = &mastered.spans;
        assert_eq!((s[0].start_ms, s[0].end_ms), (0, 2000));
        assert_eq!(s[1].start_ms, 2350);
        assert!(
            (1500..=1530).contains(&(s[1].end_ms - s[1].start_ms)),
            "{s:?}"
        );
        assert_eq!(s[2].start_ms, s[1].end_ms + 1000);
        assert_eq!(s[2].end_ms - s[2].start_ms, 1000);
        assert_eq!(mastered.duration_ms, s[2].end_ms);

        // What a listener gets: the file decodes to that length at the target loudness.
        let back = decode(&mastered.bytes, Format::Mp3).unwrap();
        assert_eq!(back.sample_rate, 44_100);
        assert!(back.duration_ms().abs_diff(mastered.duration_ms) <= 26);
        let level = measure(&back).unwrap();
        assert!(
            (level.integrated_lufs.unwrap() + 16.0).abs() <= 1.0,
            "{level:?}"
        );
        assert!(level.true_peak_dbtp <= -1.0 + 0.3, "{level:?}");
        assert!(mastered.loudness.true_peak_dbtp <= -1.0);

        let tag = id3::Tag::read_from2(std::io::Cursor::new(&mastered.bytes)).unwrap();
        use id3::TagLike;
        assert_eq!(tag.title(), Some("Episode 1"));
        let chapters: Vec<_> = tag.chapters().map(|c| (c.start_time, c.end_time)).collect();
        let end = mastered.duration_ms as u32;
        assert_eq!(
            chapters,
            vec![(0, s[2].start_ms as u32), (s[2].start_ms as u32, end)]
        );
        assert_eq!(mastered.chapters[1].title, "Goodbye");

        assert_eq!(mastered.peaks.peaks.len(), 1000);
        assert_eq!(mastered.peaks.duration_ms, mastered.duration_ms);
    }

    #[test]
    fn three_local_voices_master_to_an_mp3_at_the_target_loudness() {
        // The local voice is about -20 LUFS with peaks near full scale: it needs the limiter.
        let lines = [
            ("en-us", "Welcome to the show. Today we talk about sound."),
            ("en-gb+f3", "Thanks! I am glad to be here, really."),
            ("cmn", "你好，欢迎收听。我们今天聊一聊声音。"),
        ];
        let audio: Vec<Vec<u8>> = lines
            .iter()
            .map(|(voice, text)| espeak(&["--stdout", "-v", voice, text]))
            .collect();
        let parts: Vec<SourcePart<'_>> = audio
            .iter()
            .zip([Some("Opening"), None, Some("中文")])
            .map(|(bytes, chapter)| SourcePart {
                bytes,
                format: Format::Wav,
                chapter,
            })
            .collect();
        let mastered = master_episode(&parts, &MasterOptions::default(), None).unwrap();
        let sum: u64 = mastered.spans.iter().map(|s| s.end_ms - s.start_ms).sum();
        assert_eq!(mastered.duration_ms, sum + 350 + 1000);

        let back = decode(&mastered.bytes, Format::Mp3).unwrap();
        assert_eq!(back.duration_ms(), mastered.duration_ms);
        let level = measure(&back).unwrap();
        assert!(
            (level.integrated_lufs.unwrap() + 16.0).abs() <= 0.3,
            "{level:?}"
        );
        assert!(level.true_peak_dbtp <= -1.0, "{level:?}");
        let tag = id3::Tag::read_from2(std::io::Cursor::new(&mastered.bytes)).unwrap();
        assert_eq!(tag.chapters().count(), 2);
    }

    #[test]
    fn wav_output_keeps_the_rate_and_has_no_mp3_headroom() {
        let hello = espeak(&[
            "--stdout",
            "Hello there, this is a test of the local voice.",
        ]);
        let parts = [SourcePart {
            bytes: &hello,
            format: Format::Wav,
            chapter: None,
        }];
        let options = MasterOptions {
            sample_rate: 22_050,
            output: Encoding::Wav,
            ..Default::default()
        };
        let mastered = master_episode(&parts, &options, None).unwrap();
        let back = decode(&mastered.bytes, Format::Wav).unwrap();
        assert_eq!(back.sample_rate, 22_050);
        assert_eq!(back.duration_ms(), mastered.duration_ms);
        let level = measure(&back).unwrap();
        assert!(
            (level.integrated_lufs.unwrap() + 16.0).abs() <= 0.3,
            "{level:?}"
        );
        assert!((-1.6..=-1.0).contains(&level.true_peak_dbtp), "{level:?}");
    }

    #[test]
    fn a_bad_part_is_named_in_the_error() {
        let good = wav(&speech(24_000, 500, 0.5, 1));
        let parts = [
            SourcePart {
                bytes: &good,
                format: Format::Wav,
                chapter: None,
            },
            SourcePart {
                bytes: b"{\"error\":\"quota\"}",
                format: Format::Mp3,
                chapter: None,
            },
        ];
        let err = master_episode(&parts, &MasterOptions::default(), None).unwrap_err();
        assert!(err.to_string().contains("part 2"), "{err}");
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::audio::testing::speech;
    use crate::audio::{LoudnessTarget, Part, Peaks, encode_wav, join, measure};
    use std::time::Instant;

    /// CPU time of this thread in seconds: the machine running the tests may be busy, and
    /// wall time would measure the neighbours.
    fn cpu_s() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        let ns: f64 = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        ns / 1e9
    }

    fn env(name: &str, default: u32) -> u32 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// `MINUTES=5 RATE=44100 cargo test --release --lib mastering_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a speed measurement, run in release by hand"]
    fn mastering_speed() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("aimake=debug")
            .with_writer(std::io::stderr)
            .try_init();
        let (minutes, rate) = (env("MINUTES", 5), env("RATE", 44_100));
        // Two voices alternating 5-second lines: one as WAV at 22.05 kHz like the local voice
        // (about -20 LUFS with peaks near full scale, so the limiter works), one as MP3 at
        // 24 kHz like OpenAI's.
        let sources: Vec<(Vec<u8>, Format)> = (0..minutes * 12)
            .map(|i| {
                if i % 2 == 0 {
                    let mut pcm = speech(22_050, 4650, 0.5, i);
                    pcm.samples[1000] = 0.99;
                    (encode_wav(&pcm).unwrap(), Format::Wav)
                } else {
                    let pcm = speech(24_000, 4650, 0.3, i);
                    (encode_mp3(&pcm, 64, None).unwrap(), Format::Mp3)
                }
            })
            .collect();
        let parts: Vec<SourcePart<'_>> = sources
            .iter()
            .enumerate()
            .map(|(i, (bytes, format))| SourcePart {
                bytes,
                format: *format,
                chapter: (i % 20 == 0).then_some("Chapter"),
            })
            .collect();

        // Stage by stage, as master_episode runs them.
        let mut clock = Instant::now();
        let mut lap = |stage: &str| {
            eprintln!(
                "  {stage}: {:.0} ms",
                clock.elapsed().as_secs_f64() * 1000.0
            );
            clock = Instant::now();
        };
        let decoded: Vec<_> = parts
            .iter()
            .map(|p| decode(p.bytes, p.format).unwrap())
            .collect();
        lap("decode");
        let conformed: Vec<Part> = decoded
            .into_iter()
            .map(|pcm| conform(pcm, rate, 1).unwrap().into())
            .collect();
        lap("resample");
        let mut joined = join(conformed, 350, 1000).unwrap();
        lap("join");
        let normalized = normalize(&mut joined.pcm, LoudnessTarget::default()).unwrap();
        lap(&format!("normalize (limited: {})", normalized.limited));
        let mp3 = encode_mp3(&joined.pcm, 64, None).unwrap();
        lap("encode");
        let _ = Peaks::of(&joined.pcm, 1000);
        lap("peaks");
        drop(mp3);

        let options = MasterOptions {
            sample_rate: rate,
            ..Default::default()
        };
        let (started, cpu) = (Instant::now(), cpu_s());
        let mastered = master_episode(&parts, &options, None).unwrap();
        let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_s() - cpu);
        let audio_s = mastered.duration_ms as f64 / 1000.0;
        eprintln!(
            "mastered {audio_s:.0} s at {rate} Hz: {cpu:.3} s CPU ({:.0}x realtime), \
             {elapsed:.3} s wall ({:.0}x), {} bytes",
            audio_s / cpu,
            audio_s / elapsed,
            mastered.bytes.len()
        );
        let back = decode(&mastered.bytes, Format::Mp3).unwrap();
        let level = measure(&back).unwrap();
        eprintln!(
            "decoded: {level:?}; before encoding: {:?}",
            mastered.loudness
        );
    }
}
