//! Splitting a long recording into pieces a speech-recognition provider accepts, cut at
//! pauses so no word is split, each with its offset so the pieces' timestamps can be stitched.
//!
//! The recording is measured in 10 ms windows (mean square over all channels). A window is
//! quiet when it is well under the level of the speech: at or under the louder of 6 dB over
//! the noise floor (the quietest 50 ms of the recording) and 25 dB under the speech (the mean
//! of the loudest tenth of the windows). A recording whose windows are all within 6 dB of each other has no pauses
//! (only digital silence counts). Each cut is searched for in the last fifth of the longest
//! piece allowed: the longest run of quiet windows of at least 300 ms, or failing that of at
//! least 50 ms (a gap between words), the latest of equally long runs, cut in its middle; with
//! no quiet run there, the piece is cut at the limit.

use super::output::flac;
use super::{AudioError, Pcm, Result, frames_to_ms, ms_to_frames};

/// What a provider accepts per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLimits {
    /// The longest piece, in milliseconds.
    pub max_ms: u64,
    /// The largest upload, in bytes, as [`encode_piece`] encodes it (FLAC, whose size never
    /// passes that of 16-bit PCM by more than its headers; so also bounds a WAV upload).
    pub max_bytes: Option<u64>,
}

/// Where a piece ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// In a pause of at least 300 ms.
    Pause,
    /// In a shorter gap (no 300 ms pause near the limit).
    Gap,
    /// At the limit: no quiet stretch near it, so a word may be cut.
    Limit,
    /// The recording's end.
    End,
}

/// One piece: frames `start..end` of the recording. Pieces tile the recording in order,
/// without gap or overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: usize,
    pub end: usize,
    /// The piece's offset in the recording: add it to the times a provider returns for it.
    pub start_ms: u64,
    pub end_ms: u64,
    pub cut: Cut,
}

impl Piece {
    pub fn frames(&self) -> usize {
        self.end - self.start
    }
}

const WINDOW_MS: u64 = 10;
const PAUSE_MS: u64 = 300;
const GAP_MS: u64 = 50;
/// The share of the longest piece, at its end, searched for a cut.
const SEARCH_FIFTHS: usize = 1;
/// Pieces shorter than this are refused as a limit (a provider taking less is a bug).
const MIN_PIECE_MS: u64 = 1000;
/// FLAC's header and per-frame overhead over 16-bit PCM, with room to spare: 1 % plus 8 KiB.
const FLAC_SLACK_BYTES: u64 = 8192;

/// The dB of a window's mean square; digital silence is -100 dB.
fn db(mean_square: f32) -> f32 {
    10.0 * mean_square.max(1e-10).log10()
}

/// Cuts `pcm` into pieces within `limits`; a recording within them is one piece. Errors only
/// for limits under a second.
pub fn split(pcm: &Pcm, limits: SplitLimits) -> Result<Vec<Piece>> {
    split_first_within(pcm, limits, limits.max_ms)
}

/// As [`split`], with the first piece no longer than `first_ms` (when that is shorter than
/// the limits), cut the same way: a transcript streamed piece by piece starts sooner.
pub fn split_first_within(pcm: &Pcm, limits: SplitLimits, first_ms: u64) -> Result<Vec<Piece>> {
    let limit = max_frames(pcm, limits)?;
    let first_limit = limit.min(max_frames(
        pcm,
        SplitLimits {
            max_ms: first_ms,
            ..limits
        },
    )?);
    let frames = pcm.frames();
    let window = ms_to_frames(WINDOW_MS, pcm.sample_rate).max(1);
    let mut pieces = Vec::with_capacity(frames / limit + 1);
    let mut start = 0;
    if frames > first_limit {
        let energy = energies(pcm, window);
        let pause = (PAUSE_MS / WINDOW_MS) as usize;
        let gap = (GAP_MS / WINDOW_MS) as usize;
        let quiet = quiet_threshold(&energy, gap);
        loop {
            let limit = if start == 0 { first_limit } else { limit };
            if frames - start <= limit {
                break;
            }
            let hi = start + limit;
            let lo = hi - limit * SEARCH_FIFTHS / 5;
            // Windows wholly inside lo..hi.
            let (first, last) = (lo.div_ceil(window), hi / window);
            let run = longest_quiet_run(&energy, first, last, quiet)
                .filter(|&(_, len)| len >= gap)
                // Sound all through the last fifth: the latest quiet run of the piece's
                // second half, so the piece is shorter rather than cut in a word.
                .or_else(|| {
                    let earliest = (start + limit / 2).div_ceil(window);
                    latest_quiet_run(&energy, earliest, first, quiet, gap)
                });
            let (cut, end) = match run {
                Some((run_start, len)) => {
                    let middle = (run_start * 2 + len) * window / 2;
                    let cut = if len >= pause { Cut::Pause } else { Cut::Gap };
                    (cut, middle.clamp(start + 1, hi))
                }
                None => (Cut::Limit, hi),
            };
            pieces.push(piece(pcm, start, end, cut));
            start = end;
        }
    }
    pieces.push(piece(pcm, start, frames, Cut::End));
    Ok(pieces)
}

fn piece(pcm: &Pcm, start: usize, end: usize, cut: Cut) -> Piece {
    Piece {
        start,
        end,
        start_ms: frames_to_ms(start, pcm.sample_rate),
        end_ms: frames_to_ms(end, pcm.sample_rate),
        cut,
    }
}

/// The most frames a piece may have under both limits.
fn max_frames(pcm: &Pcm, limits: SplitLimits) -> Result<usize> {
    let mut ms = limits.max_ms;
    if let Some(bytes) = limits.max_bytes {
        let per_second = u64::from(pcm.sample_rate) * u64::from(pcm.channels) * 2;
        let usable = bytes.saturating_sub(FLAC_SLACK_BYTES) * 100 / 101;
        ms = ms.min(usable * 1000 / per_second.max(1));
    }
    if ms < MIN_PIECE_MS {
        return Err(AudioError::Invalid(format!(
            "pieces of at most {} ms and {:?} bytes are too small to split into",
            limits.max_ms, limits.max_bytes
        )));
    }
    Ok(ms_to_frames(ms, pcm.sample_rate))
}

/// Mean square of each window (the last one may be shorter), all channels together.
fn energies(pcm: &Pcm, window: usize) -> Vec<f32> {
    pcm.samples
        .chunks(window * usize::from(pcm.channels))
        .map(|w| w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32)
        .collect()
}

/// The level in dB at or under which a window is quiet: see the module documentation. The
/// noise floor is the quietest `span` windows in a row.
fn quiet_threshold(energy: &[f32], span: usize) -> f32 {
    let n = energy.len();
    if n == 0 {
        return db(0.0);
    }
    let span = span.clamp(1, n);
    let mut sum: f64 = energy[..span].iter().map(|&e| f64::from(e)).sum();
    let mut quietest = sum;
    for i in span..n {
        sum += f64::from(energy[i]) - f64::from(energy[i - span]);
        quietest = quietest.min(sum);
    }
    let floor = db((quietest.max(0.0) / span as f64) as f32);
    // The speech level: the mean energy of the loudest tenth of the windows.
    let mut sorted = energy.to_vec();
    let top = (n - n / 10).min(n - 1);
    let (_, &mut nth, louder) = sorted.select_nth_unstable_by(top, f32::total_cmp);
    let loudest_sum: f32 = louder.iter().sum::<f32>() + nth;
    let speech = db(loudest_sum / (louder.len() + 1) as f32);
    if speech - floor < 6.0 {
        return db(0.0);
    }
    (floor + 6.0).max(speech - 25.0)
}

/// The longest run of quiet windows among `first..last` (the latest of equal ones), as
/// (first window, length).
fn longest_quiet_run(
    energy: &[f32],
    first: usize,
    last: usize,
    quiet: f32,
) -> Option<(usize, usize)> {
    let window = energy.get(first..last.min(energy.len()))?;
    let mut best: Option<(usize, usize)> = None;
    let mut run_start = None;
    // A loud sentinel ends a run that reaches the end.
    let levels = window.iter().chain(std::iter::once(&f32::INFINITY));
    for (i, &level) in (first..).zip(levels) {
        let is_quiet = db(level) <= quiet;
        match (is_quiet, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                if best.is_none_or(|(_, len)| i - s >= len) {
                    best = Some((s, i - s));
                }
                run_start = None;
            }
            _ => {}
        }
    }
    best
}

/// The last run of at least `min_len` quiet windows among `first..last`, as (first window,
/// length).
fn latest_quiet_run(
    energy: &[f32],
    first: usize,
    last: usize,
    quiet: f32,
    min_len: usize,
) -> Option<(usize, usize)> {
    let last = last.min(energy.len());
    let mut end = last;
    while end > first {
        if db(energy[end - 1]) > quiet {
            end -= 1;
            continue;
        }
        let mut begin = end;
        while begin > first && db(energy[begin - 1]) <= quiet {
            begin -= 1;
        }
        if end - begin >= min_len {
            return Some((begin, end - begin));
        }
        end = begin;
    }
    None
}

/// A piece as FLAC at the recording's rate and channels (for speech recognition: 16 kHz mono,
/// see [`for_recognition`](super::for_recognition)); within [`SplitLimits::max_bytes`] when the
/// piece came from [`split`] with it.
pub fn encode_piece(pcm: &Pcm, piece: &Piece) -> Result<Vec<u8>> {
    let width = usize::from(pcm.channels);
    let samples = pcm
        .samples
        .get(piece.start * width..piece.end * width)
        .ok_or_else(|| AudioError::Invalid(format!("piece {piece:?} is outside the audio")))?;
    flac(samples, pcm.sample_rate, pcm.channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{Format, decode};
    use proptest::prelude::*;
    use std::f32::consts::TAU;

    /// A cheap recording: `(sounding, ms)` stretches, sound being a 150-250 Hz buzz with
    /// noise at about -20 dBFS, quiet being noise at about -60 dBFS. Returns the audio and the
    /// quiet stretches as frame ranges.
    fn recording(rate: u32, layout: &[(bool, u64)], seed: u32) -> (Pcm, Vec<(usize, usize)>) {
        let total: u64 = layout.iter().map(|&(_, ms)| ms).sum();
        let mut samples = Vec::with_capacity(ms_to_frames(total, rate));
        let mut rng = seed.wrapping_mul(2_654_435_761) | 1;
        let mut noise = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng as f32 / u32::MAX as f32 - 0.5
        };
        let mut quiet = Vec::new();
        let mut elapsed = 0;
        let mut phase = 0.0f32;
        for &(sounding, ms) in layout {
            let start = ms_to_frames(elapsed, rate);
            elapsed += ms;
            let end = ms_to_frames(elapsed, rate);
            let pitch = 150.0 + 100.0 * (noise() + 0.5);
            for _ in start..end {
                let sample = if sounding {
                    phase = (phase + pitch / rate as f32) % 1.0;
                    0.12 * (TAU * phase).sin() + 0.05 * noise()
                } else {
                    0.003 * noise()
                };
                samples.push(sample);
            }
            if !sounding {
                quiet.push((start, end));
            }
        }
        (Pcm::new(rate, 1, samples).unwrap(), quiet)
    }

    /// Speech-like layout: sentences of words (150-600 ms) with 40-150 ms gaps, sentences
    /// 3-12 s long separated by 350-1500 ms pauses.
    fn talk(minutes: u64, seed: u32) -> Vec<(bool, u64)> {
        let mut rng = seed | 1;
        let mut next = move |lo: u64, hi: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            lo + u64::from(rng) % (hi - lo)
        };
        let mut layout = Vec::new();
        let mut total = 0;
        while total < minutes * 60_000 {
            let sentence = next(3000, 12_000);
            let mut spoken = 0;
            while spoken < sentence {
                let word = next(150, 600);
                let gap = next(40, 150);
                layout.extend([(true, word), (false, gap)]);
                spoken += word + gap;
            }
            let pause = next(350, 1500);
            layout.push((false, pause));
            total += spoken + pause;
        }
        layout
    }

    fn assert_tiles(pieces: &[Piece], pcm: &Pcm, max_frames: usize) {
        assert_eq!(pieces[0].start, 0);
        assert_eq!(pieces.last().unwrap().end, pcm.frames());
        assert_eq!(pieces.last().unwrap().cut, Cut::End);
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "no gap, no overlap");
            assert!(pair[0].start_ms < pair[1].start_ms);
        }
        for piece in pieces {
            assert!(
                piece.frames() > 0 && piece.frames() <= max_frames,
                "{piece:?}"
            );
            assert_eq!(piece.start_ms, frames_to_ms(piece.start, pcm.sample_rate));
            assert_eq!(piece.end_ms, frames_to_ms(piece.end, pcm.sample_rate));
        }
        let total: usize = pieces.iter().map(Piece::frames).sum();
        assert_eq!(total, pcm.frames());
    }

    fn in_quiet(frame: usize, quiet: &[(usize, usize)]) -> bool {
        quiet.iter().any(|&(a, b)| (a..=b).contains(&frame))
    }

    #[test]
    fn forty_minutes_of_talk_are_cut_in_pauses_into_pieces_within_ten_minutes_and_25_mb() {
        let (pcm, quiet) = recording(16_000, &talk(40, 7), 7);
        assert!(pcm.duration_ms() >= 40 * 60_000);
        let limits = SplitLimits {
            max_ms: 10 * 60_000,
            max_bytes: Some(26_214_400),
        };
        let pieces = split(&pcm, limits).unwrap();
        let max_frames = ms_to_frames(limits.max_ms, 16_000);
        assert_tiles(&pieces, &pcm, max_frames);
        assert!(pieces.len() >= 5, "{}", pieces.len());
        let pauses: Vec<_> = quiet
            .iter()
            .filter(|(a, b)| b - a >= 4800)
            .copied()
            .collect();
        for piece in &pieces[..pieces.len() - 1] {
            assert_eq!(piece.cut, Cut::Pause, "{piece:?}");
            assert!(
                in_quiet(piece.end, &pauses),
                "cut at {} ms is in no pause",
                piece.end_ms
            );
            // The cut is near the limit: in its last fifth.
            assert!(piece.frames() >= max_frames * 4 / 5, "{piece:?}");
        }
        // Each piece encodes under the byte limit and decodes to its own length.
        for piece in &pieces {
            let flac = encode_piece(&pcm, piece).unwrap();
            assert!(flac.len() as u64 <= 26_214_400, "{} bytes", flac.len());
            let back = decode(&flac, Format::Flac).unwrap();
            assert_eq!(back.frames(), piece.frames());
        }
    }

    #[test]
    fn the_first_piece_can_be_kept_short_and_the_rest_are_cut_as_usual() {
        let (pcm, quiet) = recording(16_000, &talk(12, 3), 3);
        let limits = SplitLimits {
            max_ms: 5 * 60_000,
            max_bytes: Some(26_214_400),
        };
        let pieces = split_first_within(&pcm, limits, 30_000).unwrap();
        assert_tiles(&pieces, &pcm, ms_to_frames(limits.max_ms, 16_000));
        // The first is cut where it is quiet (a pause, or a gap between words when no pause
        // is near) within 30 s, in the last fifth of them.
        let first = pieces[0];
        assert!(matches!(first.cut, Cut::Pause | Cut::Gap), "{first:?}");
        assert!(in_quiet(first.end, &quiet), "{first:?}");
        assert!((24_000..=30_000).contains(&first.end_ms), "{first:?}");
        // From there on, pieces as long as the limits allow: the rest of 12 minutes in three.
        assert_eq!(pieces.len(), 4, "{pieces:?}");
        for piece in &pieces[1..3] {
            assert!(piece.end_ms - piece.start_ms >= 4 * 60_000, "{piece:?}");
        }
        // A first limit over the limits, or a recording within the first limit, changes
        // nothing.
        assert_eq!(
            split_first_within(&pcm, limits, 60 * 60_000).unwrap(),
            split(&pcm, limits).unwrap()
        );
        let (short, _) = recording(16_000, &[(true, 20_000)], 1);
        assert_eq!(split_first_within(&short, limits, 30_000).unwrap().len(), 1);
    }

    #[test]
    fn a_recording_without_pauses_is_cut_at_the_limit() {
        let (pcm, _) = recording(16_000, &[(true, 25_000)], 1);
        let limits = SplitLimits {
            max_ms: 10_000,
            max_bytes: None,
        };
        let pieces = split(&pcm, limits).unwrap();
        let cuts: Vec<_> = pieces
            .iter()
            .map(|p| (p.start_ms, p.end_ms, p.cut))
            .collect();
        assert_eq!(
            cuts,
            vec![
                (0, 10_000, Cut::Limit),
                (10_000, 20_000, Cut::Limit),
                (20_000, 25_000, Cut::End),
            ]
        );
        // Pure digital silence has no level to tell pauses by either, but is all quiet.
        let silence = Pcm::silence(16_000, 1, 25_000);
        let pieces = split(&silence, limits).unwrap();
        assert_tiles(&pieces, &silence, 160_000);
    }

    #[test]
    fn without_a_pause_near_the_limit_a_gap_between_words_or_an_earlier_pause_is_used() {
        // Words with 100 ms gaps only: cut in a gap, never in a word.
        let words: Vec<_> = (0..60).flat_map(|_| [(true, 300), (false, 100)]).collect();
        let (pcm, quiet) = recording(16_000, &words, 2);
        let limits = SplitLimits {
            max_ms: 10_000,
            max_bytes: None,
        };
        let pieces = split(&pcm, limits).unwrap();
        assert_tiles(&pieces, &pcm, 160_000);
        for piece in &pieces[..pieces.len() - 1] {
            assert_eq!(piece.cut, Cut::Gap, "{piece:?}");
            assert!(in_quiet(piece.end, &quiet), "{piece:?}");
        }
        // A pause at 6 s, then sound all the way past the limit: cut in the pause.
        let (pcm, quiet) = recording(16_000, &[(true, 6000), (false, 500), (true, 8000)], 3);
        let pieces = split(&pcm, limits).unwrap();
        assert_eq!(pieces[0].cut, Cut::Pause);
        assert!(
            in_quiet(pieces[0].end, &quiet) && pieces[0].end_ms < 6500,
            "{pieces:?}"
        );
        // A recording within the limits is one piece.
        let (short, _) = recording(16_000, &talk(1, 4)[..20], 4);
        assert_eq!(split(&short, limits).unwrap().len(), 1);
    }

    #[test]
    fn the_byte_limit_holds_even_for_noise_flac_cannot_compress() {
        let mut rng = 99u32;
        let noise: Vec<f32> = (0..16_000 * 60)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                rng as f32 / u32::MAX as f32 * 1.8 - 0.9
            })
            .collect();
        let pcm = Pcm::new(16_000, 1, noise).unwrap();
        let limits = SplitLimits {
            max_ms: 600_000,
            max_bytes: Some(400_000),
        };
        let pieces = split(&pcm, limits).unwrap();
        assert!(pieces.len() >= 3, "{}", pieces.len());
        for piece in &pieces {
            let flac = encode_piece(&pcm, piece).unwrap();
            assert!(flac.len() <= 400_000, "{} bytes for {piece:?}", flac.len());
        }
        // Nearly all of the limit is used.
        assert!(pieces[0].frames() * 2 > 380_000, "{:?}", pieces[0]);
    }

    #[test]
    fn limits_under_a_second_are_refused() {
        let pcm = Pcm::silence(16_000, 1, 5000);
        for limits in [
            SplitLimits {
                max_ms: 999,
                max_bytes: None,
            },
            SplitLimits {
                max_ms: 60_000,
                max_bytes: Some(20_000),
            },
        ] {
            assert!(matches!(split(&pcm, limits), Err(AudioError::Invalid(_))));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn pieces_always_tile_the_recording_within_the_limit(
            layout in prop::collection::vec((any::<bool>(), 10u64..4000), 1..40),
            max_ms in 1000u64..20_000,
            seed in any::<u32>(),
        ) {
            let (pcm, _) = recording(8000, &layout, seed);
            prop_assume!(pcm.frames() > 0);
            let limits = SplitLimits { max_ms, max_bytes: None };
            let pieces = split(&pcm, limits).unwrap();
            assert_tiles(&pieces, &pcm, ms_to_frames(max_ms, 8000));
        }
    }

    /// `cargo test --release --lib splitting_an_hour -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, run by hand in release"]
    fn splitting_an_hour_is_fast() {
        let (pcm, _) = recording(16_000, &talk(60, 11), 11);
        let started = std::time::Instant::now();
        let pieces = split(
            &pcm,
            SplitLimits {
                max_ms: 10 * 60_000,
                max_bytes: Some(26_214_400),
            },
        )
        .unwrap();
        let elapsed = started.elapsed();
        println!(
            "split {} min into {} pieces in {:?}",
            pcm.duration_ms() / 60_000,
            pieces.len(),
            elapsed
        );
    }
}
