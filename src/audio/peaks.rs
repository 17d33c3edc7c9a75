//! Waveform peaks for the player (`GET /api/audios/{id}/peaks`).

use super::Pcm;
use serde::{Deserialize, Serialize};

/// The body of `GET /api/audios/{id}/peaks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    pub sample_rate: u32,
    pub duration_ms: u64,
    /// Loudest absolute sample per bucket, 0..=1, rounded to 3 decimals (keeps the JSON small).
    pub peaks: Vec<f32>,
}

impl Peaks {
    pub fn of(pcm: &Pcm, buckets: usize) -> Self {
        Self {
            sample_rate: pcm.sample_rate,
            duration_ms: pcm.duration_ms(),
            peaks: peaks(pcm, buckets),
        }
    }

    /// The levels as stored: two bytes (little-endian) per bucket, in thousandths. Peaks
    /// are rounded to thousandths, so this is exact and a third of the JSON's size.
    pub fn levels(&self) -> Vec<u8> {
        self.peaks
            .iter()
            .flat_map(|p| ((p * 1000.0).round() as u16).to_le_bytes())
            .collect()
    }

    /// The inverse of [`Peaks::levels`]; gives back exactly the peaks that were stored.
    pub fn from_levels(sample_rate: u32, duration_ms: u64, levels: &[u8]) -> Self {
        Self {
            sample_rate,
            duration_ms,
            peaks: levels
                .chunks_exact(2)
                .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) / 1000.0)
                .collect(),
        }
    }
}

/// Splits the audio into `buckets` equal stretches of frames (fewer when there are fewer
/// frames than buckets, none for empty audio) and returns the loudest absolute sample of each,
/// across channels, clamped to 0..=1.
pub fn peaks(pcm: &Pcm, buckets: usize) -> Vec<f32> {
    let channels = usize::from(pcm.channels.max(1));
    let frames = pcm.frames();
    let buckets = buckets.min(frames);
    (0..buckets)
        .map(|b| {
            let start = b * frames / buckets;
            let end = (b + 1) * frames / buckets;
            let peak = pcm.samples[start * channels..end * channels]
                .iter()
                .fold(0.0f32, |m, s| m.max(s.abs()));
            (peak.min(1.0) * 1000.0).round() / 1000.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{sine, speech};

    #[test]
    fn peaks_have_the_requested_length_and_stay_in_range() {
        let mut pcm = sine(24_000, 2, 440.0, 0.5, 1000);
        pcm.samples[11] = 1.7;
        let peaks = peaks(&pcm, 800);
        assert_eq!(peaks.len(), 800);
        assert!(peaks.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(peaks[0], 1.0, "over-range samples clamp to 1");
        assert!(
            peaks[1..].iter().all(|&p| (p - 0.5).abs() < 0.01),
            "{peaks:?}"
        );
    }

    #[test]
    fn peaks_follow_the_shape_of_the_audio() {
        // A second of silence, then a second of tone: the first half of the buckets is flat.
        let mut pcm = Pcm::silence(8000, 1, 1000);
        pcm.samples.extend(sine(8000, 1, 200.0, 0.8, 1000).samples);
        let peaks = peaks(&pcm, 10);
        assert_eq!(peaks[..5], [0.0; 5]);
        assert!(peaks[5..].iter().all(|&p| p > 0.75));
    }

    #[test]
    fn short_or_empty_audio_gives_fewer_peaks() {
        let pcm = Pcm::new(8000, 1, vec![0.1, -0.2, 0.3]).unwrap();
        assert_eq!(peaks(&pcm, 100), vec![0.1, 0.2, 0.3]);
        assert!(peaks(&Pcm::new(8000, 1, vec![]).unwrap(), 100).is_empty());
    }

    #[test]
    fn stored_levels_give_back_the_same_body() {
        let mut pcm = speech(24_000, 3000, 0.7, 5);
        pcm.samples[3] = -1.3;
        let original = Peaks::of(&pcm, 1000);
        let levels = original.levels();
        assert_eq!(levels.len(), 2 * original.peaks.len());
        let back = Peaks::from_levels(original.sample_rate, original.duration_ms, &levels);
        assert_eq!(back, original);
        assert_eq!(
            serde_json::to_vec(&back).unwrap(),
            serde_json::to_vec(&original).unwrap(),
            "the player gets the same bytes"
        );
    }

    #[test]
    fn the_peaks_body_matches_the_api() {
        let pcm = sine(24_000, 1, 440.0, 0.25, 1500);
        let body = serde_json::to_value(Peaks::of(&pcm, 3)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"sample_rate": 24000, "duration_ms": 1500, "peaks": [0.25, 0.25, 0.25]})
        );
    }
}
