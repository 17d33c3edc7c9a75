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
/// millisecond.
pub fn join(parts: Vec<Part>, pause_ms: u32, chapter_pause_ms: u32) -> Result<Joined> {
    let Some(first) = parts.first() else {
        return Err(AudioError::Invalid("nothing to join".into()));
    };
    let (rate, channels) = (first.pcm.sample_rate, first.pcm.channels);
    let mut joiner = Joiner::new(rate, channels, pause_ms, chapter_pause_ms);
    joiner.reserve_for(parts.iter().map(|p| (p.pcm.frames(), p.new_chapter)));
    for part in parts {
        joiner.push(part)?;
    }
    Ok(joiner.finish())
}

/// [`join`] one part at a time, so a long episode never holds all its parts and the result
/// at once: decode a part, push it, drop it.
#[derive(Debug)]
pub struct Joiner {
    pcm: Pcm,
    pause: usize,
    chapter_pause: usize,
    spans: Vec<Span>,
}

impl Joiner {
    pub fn new(sample_rate: u32, channels: u16, pause_ms: u32, chapter_pause_ms: u32) -> Self {
        let samples = |ms: u32| ms_to_frames(u64::from(ms), sample_rate) * usize::from(channels);
        Self {
            pcm: Pcm {
                sample_rate,
                channels,
                samples: Vec::new(),
            },
            pause: samples(pause_ms),
            chapter_pause: samples(chapter_pause_ms),
            spans: Vec::new(),
        }
    }

    /// Reserves exactly the room that parts of these lengths (in frames) and chapter flags
    /// will take, pauses included, so a long result is never reallocated while it grows.
    pub fn reserve_for(&mut self, parts: impl IntoIterator<Item = (usize, bool)>) {
        let mut first = self.spans.is_empty();
        let mut total = 0;
        for (frames, new_chapter) in parts {
            total += self.gap(first, new_chapter) + frames * usize::from(self.pcm.channels);
            first = false;
        }
        self.pcm.samples.reserve_exact(total);
    }

    fn gap(&self, first: bool, new_chapter: bool) -> usize {
        match (first, new_chapter) {
            (true, _) => 0,
            (false, true) => self.chapter_pause,
            (false, false) => self.pause,
        }
    }

    /// Appends a part (after its pause) and returns where it landed.
    pub fn push(&mut self, part: Part) -> Result<Span> {
        let pcm = &self.pcm;
        if part.pcm.sample_rate != pcm.sample_rate || part.pcm.channels != pcm.channels {
            return Err(AudioError::Mismatch(format!(
                "{} Hz x{} next to {} Hz x{}",
                part.pcm.sample_rate, part.pcm.channels, pcm.sample_rate, pcm.channels
            )));
        }
        let gap = self.gap(self.spans.is_empty(), part.new_chapter);
        let pcm = &mut self.pcm;
        pcm.samples.resize(pcm.samples.len() + gap, 0.0);
        let start = pcm.frames();
        pcm.samples.extend_from_slice(&part.pcm.samples);
        let span = Span {
            start_ms: frames_to_ms(start, pcm.sample_rate),
            end_ms: frames_to_ms(pcm.frames(), pcm.sample_rate),
        };
        self.spans.push(span);
        Ok(span)
    }

    pub fn finish(self) -> Joined {
        Joined {
            pcm: self.pcm,
            spans: self.spans,
        }
    }
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

    #[test]
    fn a_joiner_reserves_exactly_what_the_parts_take() {
        let parts = [(24_000, false), (12_000, false), (2400, true)];
        let mut joiner = Joiner::new(24_000, 1, 350, 1000);
        joiner.reserve_for(parts);
        let capacity = joiner.pcm.samples.capacity();
        for (frames, new_chapter) in parts {
            let pcm = Pcm::new(24_000, 1, vec![0.25; frames]).unwrap();
            joiner.push(Part { pcm, new_chapter }).unwrap();
        }
        let joined = joiner.finish();
        assert_eq!(
            joined.pcm.samples.len(),
            24_000 + 8400 + 12_000 + 24_000 + 2400
        );
        assert_eq!(joined.pcm.samples.capacity(), capacity, "never reallocated");
        assert_eq!(joined.spans[2].start_ms, 1000 + 350 + 500 + 1000);
    }
}
