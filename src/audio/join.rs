//! Joining synthesized parts with pauses, measuring where each part lands.

use super::{AudioError, Pcm, Result, frames_to_ms, ms_to_frames};

/// One piece of audio to join, e.g. a text chunk or a podcast line.
#[derive(Debug, Clone)]
pub struct Part {
    pub pcm: Pcm,
    /// Precede this part with the chapter pause instead of the line pause (ignored on the
    /// first part: nothing starts with silence).
    pub new_chapter: bool,
}

impl From<Pcm> for Part {
    fn from(pcm: Pcm) -> Self {
        Self {
            pcm,
            new_chapter: false,
        }
    }
}

/// Where a part sits in the joined audio, in milliseconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub pcm: Pcm,
    /// One span per part, in order: the timings for subtitles and chapters.
    pub spans: Vec<Span>,
}

/// Concatenates parts of one rate and channel count (see [`super::conform`]) with `pause_ms`
/// of silence between them, or `chapter_pause_ms` before a part that starts a chapter.
/// Spans are derived from frame positions, so they agree with the joined audio to the
/// millisecond. Parts are consumed so their memory goes as the result grows.
pub fn join(parts: Vec<Part>, pause_ms: u32, chapter_pause_ms: u32) -> Result<Joined> {
    let Some(first) = parts.first() else {
        return Err(AudioError::Invalid("nothing to join".into()));
    };
    let (rate, channels) = (first.pcm.sample_rate, first.pcm.channels);
    if let Some(odd) = parts
        .iter()
        .find(|p| p.pcm.sample_rate != rate || p.pcm.channels != channels)
    {
        return Err(AudioError::Mismatch(format!(
            "{} Hz x{} next to {rate} Hz x{channels}",
            odd.pcm.sample_rate, odd.pcm.channels
        )));
    }
    let width = usize::from(channels);
    let pause = ms_to_frames(u64::from(pause_ms), rate) * width;
    let chapter_pause = ms_to_frames(u64::from(chapter_pause_ms), rate) * width;
    let gap = |i: usize, part: &Part| match (i, part.new_chapter) {
        (0, _) => 0,
        (_, true) => chapter_pause,
        (_, false) => pause,
    };
    let total: usize = parts
        .iter()
        .enumerate()
        .map(|(i, p)| gap(i, p) + p.pcm.samples.len())
        .sum();

    let mut samples = Vec::with_capacity(total);
    let mut spans = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        samples.resize(samples.len() + gap(i, &part), 0.0);
        let start = samples.len() / width;
        samples.extend_from_slice(&part.pcm.samples);
        spans.push(Span {
            start_ms: frames_to_ms(start, rate),
            end_ms: frames_to_ms(samples.len() / width, rate),
        });
    }
    Ok(Joined {
        pcm: Pcm {
            sample_rate: rate,
            channels,
            samples,
        },
        spans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::sine;

    #[test]
    fn joining_inserts_pauses_and_reports_exact_spans() {
        let a = sine(24_000, 1, 440.0, 0.5, 1000);
        let b = sine(24_000, 1, 330.0, 0.5, 500);
        let c = sine(24_000, 1, 220.0, 0.5, 250);
        let parts = vec![
            Part::from(a.clone()),
            Part::from(b.clone()),
            Part {
                pcm: c.clone(),
                new_chapter: true,
            },
        ];
        let joined = join(parts, 350, 1200).unwrap();
        assert_eq!(
            joined.spans,
            vec![
                Span {
                    start_ms: 0,
                    end_ms: 1000
                },
                Span {
                    start_ms: 1350,
                    end_ms: 1850
                },
                Span {
                    start_ms: 3050,
                    end_ms: 3300
                },
            ]
        );
        assert_eq!(joined.pcm.duration_ms(), 3300);
        // The audio is really where the spans say, and the pauses are silent.
        let at = |ms: u64| 24 * ms as usize;
        assert_eq!(joined.pcm.samples[at(1350)..at(1850)], b.samples[..]);
        assert_eq!(joined.pcm.samples[at(3050)..], c.samples[..]);
        assert!(
            joined.pcm.samples[at(1000)..at(1350)]
                .iter()
                .all(|&s| s == 0.0)
        );
        assert!(
            joined.pcm.samples[at(1850)..at(3050)]
                .iter()
                .all(|&s| s == 0.0)
        );
    }

    #[test]
    fn a_chapter_flag_on_the_first_part_adds_no_leading_silence() {
        let part = Part {
            pcm: sine(8000, 1, 440.0, 0.5, 100),
            new_chapter: true,
        };
        let joined = join(vec![part], 350, 1000).unwrap();
        assert_eq!(joined.spans[0].start_ms, 0);
        assert_eq!(joined.pcm.duration_ms(), 100);
    }

    #[test]
    fn parts_of_different_rates_or_no_parts_are_refused() {
        let parts = vec![
            Part::from(sine(24_000, 1, 440.0, 0.5, 100)),
            Part::from(sine(22_050, 1, 440.0, 0.5, 100)),
        ];
        assert!(matches!(join(parts, 0, 0), Err(AudioError::Mismatch(_))));
        assert!(join(vec![], 0, 0).is_err());
    }
}
