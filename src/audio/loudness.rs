//! Loudness (EBU R128 via `ebur128`): measuring, and normalizing to a target with a
//! true-peak-safe limiter.
//!
//! Normalizing is "gain, then limit only if needed":
//! 1. Measure integrated loudness and sample peak. Digital silence or audio below the R128
//!    absolute gate (-70 LUFS) is left alone, and the gain is capped at +30 dB, so quiet input
//!    is never blown up into amplified noise.
//! 2. If the sample peak plus the gain stays 0.3 dB under the true-peak ceiling, apply the
//!    gain; the true peak, measured before it alongside the loudness, moves by the gain: under
//!    the ceiling, done (exact).
//! 3. Otherwise apply the gain through a look-ahead limiter (5 ms look-ahead, 80 ms release,
//!    channels linked) that holds samples and the waveform between them (4x interpolation,
//!    like the true-peak meter) 0.3 dB under the ceiling. Limiting lowers the loudness a
//!    little, so the limited loudness is measured without writing and the gain corrected
//!    (secant steps, at most three passes, usually one or two).
//! 4. Measure the true peak of the result; should it still exceed the ceiling (the limiter's
//!    interpolation is shorter than the meter's), scale down by the excess. The ceiling always
//!    holds; the loudness lands within 0.1 LU of the target, less any such final trim, which
//!    is a fraction of a dB at most.
//!
//! Mono is measured as dual mono, i.e. as it sounds played on two speakers, so a mono and a
//! stereo file normalized to -16 LUFS sound equally loud (ITU BS.1770's plain mono weighting
//! would make mono 3 dB louder; this is the convention of podcast mastering tools).

use super::{AudioError, Pcm, Result};
use ebur128::{Channel, EbuR128, Mode};
use std::collections::VecDeque;

/// Integrated loudness and true peak of some audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// `None` for silence or audio entirely below the -70 LUFS absolute gate.
    pub integrated_lufs: Option<f64>,
    /// Highest inter-sample peak in dBTP; `-inf` for digital silence.
    pub true_peak_dbtp: f64,
}

/// What [`normalize`] aims for. The defaults are the usual podcast targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessTarget {
    pub integrated_lufs: f64,
    pub max_true_peak_dbtp: f64,
}

impl Default for LoudnessTarget {
    fn default() -> Self {
        Self {
            integrated_lufs: -16.0,
            max_true_peak_dbtp: -1.0,
        }
    }
}

/// What [`normalize`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalized {
    /// Integrated loudness of the input; `None` for silence, which is left alone.
    pub before_lufs: Option<f64>,
    /// Of the result: the true peak measured, the loudness measured while limiting or exact
    /// when only a gain was applied.
    pub after: Loudness,
    /// Overall gain applied (before the limiter, including any final trim).
    pub gain_db: f64,
    /// Whether the limiter had to touch peaks.
    pub limited: bool,
}

/// Beyond this much amplification the input is mostly noise floor.
const MAX_GAIN_DB: f64 = 30.0;
/// Headroom between the limiter's ceiling and the true-peak ceiling: the limiter's short
/// interpolation and the gain changing across it are a little off the meter's reading.
const TRUE_PEAK_MARGIN_DB: f64 = 0.3;
const LOOKAHEAD_MS: u32 = 5;
const RELEASE_MS: f32 = 80.0;
/// How far under the ceiling a peak predicted from the unscaled audio must be to be trusted
/// without measuring the scaled audio again.
const SCALED_PEAK_SLACK_DB: f64 = 0.001;
/// Gain corrections stop once the limited loudness is this close to the target.
const LOUDNESS_TOLERANCE_LU: f64 = 0.1;
const MAX_LIMITER_PASSES: usize = 3;
/// Frames the limiter computes gains for at a time.
const BLOCK_FRAMES: usize = 8192;

/// Measures integrated loudness and true peak.
pub fn measure(pcm: &Pcm) -> Result<Loudness> {
    let mut meter = meter(pcm, Mode::I | Mode::TRUE_PEAK | Mode::HISTOGRAM)?;
    meter.add_frames_f32(&pcm.samples).map_err(meter_error)?;
    read(&meter, pcm.channels)
}

/// Normalizes in place to `target`; see the module documentation for the method.
pub fn normalize(pcm: &mut Pcm, target: LoudnessTarget) -> Result<Normalized> {
    if !target.integrated_lufs.is_finite()
        || !target.max_true_peak_dbtp.is_finite()
        || target.max_true_peak_dbtp > 0.0
    {
        return Err(AudioError::Invalid(format!("loudness target {target:?}")));
    }
    // The true peak is measured on a second core while the loudness is: a gain moves it by
    // exactly as many dB, so the usual gain-only case needs no second pass over the audio.
    let (level, peak_before_dbtp) = std::thread::scope(|scope| {
        let peak = scope.spawn(|| true_peak_of(pcm));
        let level = meter(pcm, Mode::I | Mode::SAMPLE_PEAK | Mode::HISTOGRAM).and_then(|mut m| {
            m.add_frames_f32(&pcm.samples).map_err(meter_error)?;
            Ok(m)
        });
        let peak = peak
            .join()
            .unwrap_or_else(|_| Err(AudioError::Invalid("true-peak meter panicked".into())));
        (level, peak)
    });
    let (level, peak_before_dbtp) = (level?, peak_before_dbtp?);
    let lufs = level.loudness_global().map_err(meter_error)?;
    if !lufs.is_finite() {
        return Ok(Normalized {
            before_lufs: None,
            after: measure(pcm)?,
            gain_db: 0.0,
            limited: false,
        });
    }
    let mut sample_peak = 0.0f64;
    for channel in 0..u32::from(pcm.channels) {
        sample_peak = sample_peak.max(level.sample_peak(channel).map_err(meter_error)?);
    }
    let ceiling_db = target.max_true_peak_dbtp;
    let limit_db = ceiling_db - TRUE_PEAK_MARGIN_DB;
    let wanted_db = (target.integrated_lufs - lufs).min(MAX_GAIN_DB);

    // Gain alone, when the peaks leave room for it (the usual case for clean speech).
    let mut applied_db = 0.0;
    if 20.0 * sample_peak.log10() + wanted_db <= limit_db {
        scale(&mut pcm.samples, db_to_gain(wanted_db));
        let true_peak_dbtp = peak_before_dbtp + wanted_db;
        // Rounding in the scaled samples moves the peak by far less than this.
        if true_peak_dbtp <= ceiling_db - SCALED_PEAK_SLACK_DB {
            return Ok(Normalized {
                before_lufs: Some(lufs),
                after: Loudness {
                    integrated_lufs: Some(lufs + wanted_db),
                    true_peak_dbtp,
                },
                gain_db: wanted_db,
                limited: false,
            });
        }
        // Inter-sample peaks the sample peak did not show: limit what is already scaled.
        applied_db = wanted_db;
    }

    let ceiling = db_to_gain(limit_db) as f32;
    let start_db = (wanted_db - applied_db).min(MAX_GAIN_DB - applied_db);
    let (extra_db, limited_lufs) = converge(pcm, target.integrated_lufs, start_db, ceiling)?;
    // Writing repeats exactly the arithmetic just measured, so the loudness is known.
    limit_in_place(pcm, db_to_gain(extra_db) as f32, ceiling);
    let mut gain_db = applied_db + extra_db;
    let mut after = Loudness {
        integrated_lufs: limited_lufs,
        true_peak_dbtp: true_peak_of(pcm)?,
    };
    if after.true_peak_dbtp > ceiling_db {
        let trim_db = ceiling_db - after.true_peak_dbtp - 0.01;
        scale(&mut pcm.samples, db_to_gain(trim_db));
        gain_db += trim_db;
        after.true_peak_dbtp += trim_db;
        after.integrated_lufs = after.integrated_lufs.map(|l| l + trim_db);
    }
    Ok(Normalized {
        before_lufs: Some(lufs),
        after,
        gain_db,
        limited: true,
    })
}

fn true_peak_of(pcm: &Pcm) -> Result<f64> {
    let mut meter = meter(pcm, Mode::TRUE_PEAK)?;
    meter.add_frames_f32(&pcm.samples).map_err(meter_error)?;
    true_peak(&meter, pcm.channels)
}

/// Finds the gain at which the limited audio reaches `target`, starting from `gain_db`.
/// Returns it with the loudness measured at exactly that gain.
fn converge(pcm: &Pcm, target: f64, mut gain_db: f64, ceiling: f32) -> Result<(f64, Option<f64>)> {
    let mut previous: Option<(f64, f64)> = None;
    for pass in 1..=MAX_LIMITER_PASSES {
        let Some(lufs) = measure_limited(pcm, db_to_gain(gain_db) as f32, ceiling)? else {
            return Ok((gain_db, None));
        };
        let error = target - lufs;
        if error.abs() < LOUDNESS_TOLERANCE_LU || pass == MAX_LIMITER_PASSES {
            tracing::debug!(pass, gain_db, lufs, "limited loudness settled");
            return Ok((gain_db, Some(lufs)));
        }
        // Under limiting, loudness grows slower than the gain: follow the measured slope.
        let slope = match previous {
            Some((g, l)) if (gain_db - g).abs() > 1e-6 => {
                ((lufs - l) / (gain_db - g)).clamp(0.1, 1.0)
            }
            _ => 1.0,
        };
        previous = Some((gain_db, lufs));
        gain_db = (gain_db + error / slope).min(MAX_GAIN_DB);
    }
    unreachable!("the last pass returns")
}

fn meter_error(e: ebur128::Error) -> AudioError {
    AudioError::Invalid(format!("loudness meter: {e}"))
}

fn meter(pcm: &Pcm, mode: Mode) -> Result<EbuR128> {
    let mut meter =
        EbuR128::new(u32::from(pcm.channels), pcm.sample_rate, mode).map_err(meter_error)?;
    if pcm.channels == 1 {
        meter
            .set_channel(0, Channel::DualMono)
            .map_err(meter_error)?;
    }
    Ok(meter)
}

fn read(meter: &EbuR128, channels: u16) -> Result<Loudness> {
    let lufs = meter.loudness_global().map_err(meter_error)?;
    Ok(Loudness {
        integrated_lufs: lufs.is_finite().then_some(lufs),
        true_peak_dbtp: true_peak(meter, channels)?,
    })
}

fn true_peak(meter: &EbuR128, channels: u16) -> Result<f64> {
    let mut peak = 0.0f64;
    for channel in 0..u32::from(channels) {
        peak = peak.max(meter.true_peak(channel).map_err(meter_error)?);
    }
    Ok(20.0 * peak.log10())
}

/// Applies `gain` through the limiter.
fn limit_in_place(pcm: &mut Pcm, gain: f32, ceiling: f32) {
    let channels = usize::from(pcm.channels);
    let frames = pcm.frames();
    let mut limiter = Limiter::new(pcm.sample_rate, gain, ceiling);
    let mut gains = vec![0.0f32; BLOCK_FRAMES];
    let mut start = 0;
    while start < frames {
        let n = BLOCK_FRAMES.min(frames - start);
        // The limiter reads ahead of the block, which is written only after.
        limiter.fill(&pcm.samples, channels, &mut gains[..n]);
        let block = &mut pcm.samples[start * channels..(start + n) * channels];
        if channels == 1 {
            block
                .iter_mut()
                .zip(&gains[..n])
                .for_each(|(s, g)| *s *= gain * g);
        } else {
            for (frame, &g) in block.chunks_exact_mut(channels).zip(&gains[..n]) {
                frame.iter_mut().for_each(|s| *s *= gain * g);
            }
        }
        start += n;
    }
}

/// Integrated loudness of the audio as it would be after gain and limiting, without writing it.
fn measure_limited(pcm: &Pcm, gain: f32, ceiling: f32) -> Result<Option<f64>> {
    let channels = usize::from(pcm.channels);
    let mut meter = meter(pcm, Mode::I | Mode::HISTOGRAM)?;
    let mut limiter = Limiter::new(pcm.sample_rate, gain, ceiling);
    let mut gains = vec![0.0f32; BLOCK_FRAMES];
    let mut scratch = Vec::with_capacity(BLOCK_FRAMES * channels);
    let mut start = 0;
    while start < pcm.frames() {
        let n = BLOCK_FRAMES.min(pcm.frames() - start);
        limiter.fill(&pcm.samples, channels, &mut gains[..n]);
        let block = &pcm.samples[start * channels..(start + n) * channels];
        scratch.clear();
        if channels == 1 {
            scratch.extend(block.iter().zip(&gains[..n]).map(|(s, g)| s * (gain * g)));
        } else {
            for (frame, &g) in block.chunks_exact(channels).zip(&gains[..n]) {
                scratch.extend(frame.iter().map(|s| s * (gain * g)));
            }
        }
        meter.add_frames_f32(&scratch).map_err(meter_error)?;
        start += n;
    }
    let lufs = meter.loudness_global().map_err(meter_error)?;
    Ok(lufs.is_finite().then_some(lufs))
}

/// A look-ahead brickwall limiter's gain computer. For each frame it needs the gain `r` that
/// would bring that frame under the ceiling; the gain it gives frame `n` is the average, over
/// the `lookahead` frames from `n`, of the minimum `r` in the `lookahead` frames up to each:
/// that is never above `r[n]` (so no sample exceeds the ceiling) and ramps linearly over the
/// look-ahead instead of jumping. A one-pole release then lets the gain recover smoothly.
///
/// Speech rarely needs limiting, so while nothing has come near the ceiling for a while the
/// limiter skips the bookkeeping and hands out unity gain.
struct Limiter {
    gain: f32,
    ceiling: f32,
    lookahead: usize,
    /// Next frame to read (it reads `lookahead - 1` frames ahead of what it hands out).
    read: usize,
    /// Sliding minimum of `r` over the last `lookahead` frames: (frame, r), r increasing.
    /// Frames with `r == 1` read on the fast path are left out: a missing entry counts as 1.
    minima: VecDeque<(usize, f32)>,
    /// The last `lookahead` sliding minima and their sum, for the moving average.
    window: Vec<f32>,
    slot: usize,
    sum: f64,
    release: f32,
    envelope: f32,
    /// Frames read in a row with `r == 1`.
    quiet: usize,
    interpolator: Interpolator,
}

impl Limiter {
    fn new(sample_rate: u32, gain: f32, ceiling: f32) -> Self {
        let lookahead = super::ms_to_frames(u64::from(LOOKAHEAD_MS), sample_rate).max(1);
        Self {
            gain,
            ceiling,
            lookahead,
            read: 0,
            minima: VecDeque::with_capacity(lookahead + 1),
            window: vec![1.0; lookahead],
            slot: 0,
            sum: lookahead as f64,
            release: 1.0 - (-1000.0 / (RELEASE_MS * sample_rate as f32)).exp(),
            envelope: 1.0,
            quiet: usize::MAX / 2,
            interpolator: Interpolator::new(),
        }
    }

    /// Writes the gains of the next `out.len()` frames of `samples` (the whole signal, so the
    /// limiter can look ahead; beyond its end it reads silence).
    fn fill(&mut self, samples: &[f32], channels: usize, out: &mut [f32]) {
        let frames = samples.len() / channels;
        // Prime: the first gain comes out once `lookahead` frames have been read.
        while self.read + 1 < self.lookahead {
            let r = self.required(samples, channels, frames);
            self.step(r);
        }
        let mut i = 0;
        while i < out.len() {
            if self.window_clear() {
                // No frame in reach needs limiting: only the release is left to play out, up
                // to the next frame over the ceiling, found with a plain scan.
                // A frame's `r` depends on the samples its interpolation reaches, so the scan
                // covers those too and stops short of the first that could matter.
                let want = out.len() - i;
                let from = self.read.saturating_sub(TAPS_BEFORE);
                let to = (self.read + want + TAPS_AFTER).min(frames);
                let near = self.ceiling / (self.gain * self.interpolator.bound);
                let first_near = samples
                    .get(from * channels..to * channels)
                    .and_then(|ahead| ahead.iter().position(|s| s.abs() > near))
                    .map(|p| from + p / channels);
                let n = first_near.map_or(want, |f| {
                    f.saturating_sub(TAPS_AFTER)
                        .saturating_sub(self.read)
                        .min(want)
                });
                if self.envelope >= 1.0 {
                    out[i..i + n].fill(1.0);
                } else {
                    let mut envelope = self.envelope;
                    for g in &mut out[i..i + n] {
                        envelope = recover(envelope, self.release);
                        *g = envelope;
                    }
                    self.envelope = envelope;
                }
                i += n;
                self.read += n;
                self.slot = (self.slot + n) % self.lookahead;
                self.quiet = self.quiet.saturating_add(n);
                if i == out.len() {
                    break;
                }
            }
            let r = self.required(samples, channels, frames);
            out[i] = self.step(r);
            i += 1;
        }
    }

    /// The gain that brings the next frame's loudest channel, and the waveform between it and
    /// the following frame, down to the ceiling (1 if under).
    fn required(&self, samples: &[f32], channels: usize, frames: usize) -> f32 {
        if self.read >= frames {
            return 1.0;
        }
        let frame = &samples[self.read * channels..(self.read + 1) * channels];
        let sample_peak = frame.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        let peak = self
            .interpolator
            .peak_after(samples, channels, self.read)
            .max(sample_peak)
            * self.gain;
        if peak > self.ceiling {
            self.ceiling / peak
        } else {
            1.0
        }
    }

    /// Whether nothing under 1 is left in the window or in the minima it averages.
    fn window_clear(&mut self) -> bool {
        if self.quiet < 2 * self.lookahead {
            return false;
        }
        // Everything in the window is 1: drop stale entries and any rounding in the sum.
        self.minima.clear();
        self.sum = self.lookahead as f64;
        true
    }

    fn advance_slot(&mut self) {
        self.slot += 1;
        if self.slot == self.lookahead {
            self.slot = 0;
        }
    }

    /// Reads one frame's `r`; returns the gain of the frame `lookahead - 1` frames back.
    fn step(&mut self, r: f32) -> f32 {
        let m = self.read;
        self.read += 1;
        self.quiet = if r < 1.0 {
            0
        } else {
            self.quiet.saturating_add(1)
        };
        while self.minima.back().is_some_and(|&(_, v)| v >= r) {
            self.minima.pop_back();
        }
        if r < 1.0 {
            self.minima.push_back((m, r));
        }
        while self
            .minima
            .front()
            .is_some_and(|&(i, _)| i + self.lookahead <= m)
        {
            self.minima.pop_front();
        }
        let minimum = self.minima.front().map_or(1.0, |&(_, v)| v);
        self.sum += f64::from(minimum) - f64::from(self.window[self.slot]);
        self.window[self.slot] = minimum;
        self.advance_slot();
        let average = (self.sum / self.lookahead as f64) as f32;
        self.envelope = average.min(recover(self.envelope, self.release));
        self.envelope
    }
}

/// One frame of the release towards unity, snapping to it once inaudibly close (0.0001 dB).
fn recover(envelope: f32, release: f32) -> f32 {
    let recovered = envelope + (1.0 - envelope) * release;
    if recovered > 0.999_99 { 1.0 } else { recovered }
}

/// Samples before and after a frame that its interpolation reads.
const TAPS_BEFORE: usize = 5;
const TAPS_AFTER: usize = 6;
const TAPS: usize = TAPS_BEFORE + 1 + TAPS_AFTER;

/// Estimates the waveform between samples, as BS.1770's true-peak meter does (4x
/// oversampling), so the limiter can hold down inter-sample peaks and not only samples:
/// windowed-sinc values at a quarter, half and three quarters of the way to the next frame.
#[derive(Debug)]
struct Interpolator {
    phases: [[f32; TAPS]; 3],
    /// The most any interpolated value can exceed the largest sample it reads: samples below
    /// `ceiling / bound` cannot make a peak over the ceiling.
    bound: f32,
}

impl Interpolator {
    fn new() -> Self {
        let mut phases = [[0.0f32; TAPS]; 3];
        let mut bound = 1.0f32;
        for (k, phase) in phases.iter_mut().enumerate() {
            let offset = (k + 1) as f64 / 4.0;
            let half_width = (TAPS / 2) as f64;
            let mut taps = [0.0f64; TAPS];
            for (j, tap) in taps.iter_mut().enumerate() {
                let t = offset - (j as f64 - TAPS_BEFORE as f64);
                let x = std::f64::consts::PI * t;
                let sinc = if t == 0.0 { 1.0 } else { x.sin() / x };
                let w = std::f64::consts::PI * t / half_width;
                let blackman = 0.42 + 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
                *tap = sinc * blackman;
            }
            let dc: f64 = taps.iter().sum();
            for (out, tap) in phase.iter_mut().zip(taps) {
                *out = (tap / dc) as f32;
            }
            bound = bound.max(phase.iter().map(|t| t.abs()).sum());
        }
        Self { phases, bound }
    }

    /// The largest absolute interpolated value between `frame` and the next, over channels.
    fn peak_after(&self, samples: &[f32], channels: usize, frame: usize) -> f32 {
        let frames = samples.len() / channels;
        let mut peak = 0.0f32;
        for channel in 0..channels {
            let at = |f: isize| {
                usize::try_from(f)
                    .ok()
                    .filter(|&f| f < frames)
                    .map_or(0.0, |f| samples[f * channels + channel])
            };
            let start = frame as isize - TAPS_BEFORE as isize;
            let window: [f32; TAPS] = std::array::from_fn(|j| at(start + j as isize));
            for phase in &self.phases {
                let value: f32 = phase.iter().zip(&window).map(|(h, x)| h * x).sum();
                peak = peak.max(value.abs());
            }
        }
        peak
    }
}

fn scale(samples: &mut [f32], gain: f64) {
    let gain = gain as f32;
    for s in samples {
        *s *= gain;
    }
}

fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{sine, speech};

    #[test]
    fn a_full_scale_sine_measures_as_the_standard_says() {
        // BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS.
        let mut left_only = sine(48_000, 2, 997.0, 1.0, 3000);
        left_only
            .samples
            .iter_mut()
            .skip(1)
            .step_by(2)
            .for_each(|s| *s = 0.0);
        let loudness = measure(&left_only).unwrap();
        assert!(
            (loudness.integrated_lufs.unwrap() + 3.01).abs() < 0.05,
            "{loudness:?}"
        );
        assert!(loudness.true_peak_dbtp.abs() < 0.1, "{loudness:?}");
        // In both channels it is twice the power; mono counts as dual mono, the same.
        for channels in [2, 1] {
            let tone = measure(&sine(48_000, channels, 997.0, 1.0, 3000)).unwrap();
            assert!(
                tone.integrated_lufs.unwrap().abs() < 0.05,
                "{channels}: {tone:?}"
            );
        }
    }

    #[test]
    fn quiet_speech_is_raised_to_the_target_by_gain_alone() {
        let mut voice = speech(24_000, 8000, 0.05, 3);
        let result = normalize(&mut voice, LoudnessTarget::default()).unwrap();
        assert!(!result.limited);
        let after = measure(&voice).unwrap();
        assert!(
            (after.integrated_lufs.unwrap() + 16.0).abs() < 0.1,
            "{after:?}"
        );
        assert!(after.true_peak_dbtp <= -1.0, "{after:?}");
        assert!(
            (after.integrated_lufs.unwrap() - result.after.integrated_lufs.unwrap()).abs() < 0.05
        );
        assert!(
            (after.true_peak_dbtp - result.after.true_peak_dbtp).abs() < 0.001,
            "the reported true peak is the file's: {after:?} vs {:?}",
            result.after
        );
    }

    #[test]
    fn peaky_speech_is_limited_to_the_ceiling_and_still_reaches_the_target() {
        // Speech near full scale whose loudness is far below -16 LUFS: gain alone would clip.
        let mut voice = speech(22_050, 8000, 0.3, 5);
        for i in (0..voice.samples.len()).step_by(4000) {
            voice.samples[i] = if i % 8000 == 0 { 0.99 } else { -0.99 };
        }
        let before = measure(&voice).unwrap();
        assert!(before.true_peak_dbtp + (-16.0 - before.integrated_lufs.unwrap()) > 0.0);

        let result = normalize(&mut voice, LoudnessTarget::default()).unwrap();
        assert!(result.limited);
        let after = measure(&voice).unwrap();
        assert!(
            (after.integrated_lufs.unwrap() + 16.0).abs() < 0.5,
            "{after:?}"
        );
        assert!(after.true_peak_dbtp <= -1.0 + 1e-6, "{after:?}");
        assert_eq!(result.after, after);
    }

    #[test]
    fn other_targets_are_honoured() {
        let mut voice = speech(44_100, 6000, 0.5, 9);
        let target = LoudnessTarget {
            integrated_lufs: -23.0,
            max_true_peak_dbtp: -2.0,
        };
        normalize(&mut voice, target).unwrap();
        let after = measure(&voice).unwrap();
        assert!(
            (after.integrated_lufs.unwrap() + 23.0).abs() < 0.5,
            "{after:?}"
        );
        assert!(after.true_peak_dbtp <= -2.0 + 1e-6, "{after:?}");
    }

    #[test]
    fn silence_is_left_alone_instead_of_amplified() {
        let mut silent = Pcm::silence(24_000, 1, 2000);
        let result = normalize(&mut silent, LoudnessTarget::default()).unwrap();
        assert_eq!(result.gain_db, 0.0);
        assert_eq!(result.before_lufs, None);
        assert!(silent.samples.iter().all(|&s| s == 0.0));

        // A faint hiss far below speech level gets at most the capped gain.
        let mut hiss = sine(24_000, 1, 3000.0, 0.0005, 2000);
        let result = normalize(&mut hiss, LoudnessTarget::default()).unwrap();
        assert!(result.gain_db <= MAX_GAIN_DB, "{result:?}");
        assert!(
            result.after.integrated_lufs.unwrap() < -16.0 - 5.0,
            "{result:?}"
        );

        let mut empty = Pcm::new(24_000, 1, vec![]).unwrap();
        assert_eq!(
            normalize(&mut empty, LoudnessTarget::default())
                .unwrap()
                .gain_db,
            0.0
        );
    }

    #[test]
    fn the_limiter_never_lets_a_sample_over_the_ceiling_and_ramps_smoothly() {
        let mut samples = vec![0.1f32; 48_000];
        samples[1000] = 1.0;
        samples[1001] = -0.9;
        samples[30_000] = 0.8;
        let mut pcm = Pcm::new(48_000, 1, samples).unwrap();
        let ceiling = 0.5;
        limit_in_place(&mut pcm, 1.0, ceiling);
        let s = &pcm.samples;
        assert!(s.iter().all(|s| s.abs() <= ceiling + 1e-6));
        // Held at the ceiling, or a little under where the waveform between samples peaks.
        assert!((0.4..=ceiling).contains(&s[1000]), "{}", s[1000]);
        assert!((0.48..=ceiling).contains(&s[30_000]), "{}", s[30_000]);
        // Before the 5 ms look-ahead and after the release nothing changes; in between the
        // gain moves in small steps.
        assert_eq!(s[..750], [0.1; 750]);
        assert!((s[28_000] - 0.1).abs() < 2e-4, "{}", s[28_000]);
        assert!((s[47_999] - 0.1).abs() < 1e-3, "{}", s[47_999]);
        let steps = s[700..1000].windows(2).map(|w| (w[1] - w[0]).abs());
        assert!(steps.fold(0.0f32, f32::max) < 0.001);
    }

    #[test]
    fn the_limiter_holds_peaks_between_samples_too() {
        // A quarter-rate sine sampled 45 degrees off its crests: every sample is at 0.707 of
        // the waveform's real peak, 3 dB of inter-sample peak a sample limiter cannot see.
        let rate = 48_000;
        let samples = (0..rate)
            .map(|n| (std::f32::consts::FRAC_PI_2 * n as f32 + std::f32::consts::FRAC_PI_4).sin())
            .collect();
        let mut pcm = Pcm::new(rate, 1, samples).unwrap();
        limit_in_place(&mut pcm, 1.0, 0.5);
        let true_peak = measure(&pcm).unwrap().true_peak_dbtp;
        let ceiling_db = 20.0 * 0.5f64.log10();
        assert!(
            true_peak <= ceiling_db + 0.1,
            "{true_peak} dBTP over {ceiling_db}"
        );
        assert!(
            true_peak >= ceiling_db - 0.5,
            "{true_peak} dBTP: limited far too much"
        );
    }

    #[test]
    fn the_limiter_links_channels_and_keeps_their_balance() {
        let mut stereo = sine(24_000, 2, 200.0, 0.9, 500);
        for frame in stereo.samples.chunks_exact_mut(2) {
            frame[1] *= 0.5;
        }
        limit_in_place(&mut stereo, 1.0, 0.6);
        for frame in stereo.samples.chunks_exact(2) {
            assert!(frame[0].abs() <= 0.6 + 1e-6);
            assert!((frame[1] - frame[0] * 0.5).abs() < 1e-6);
        }
    }

    #[test]
    fn nonsense_targets_are_refused() {
        let mut voice = speech(24_000, 500, 0.5, 1);
        let bad = LoudnessTarget {
            integrated_lufs: -16.0,
            max_true_peak_dbtp: 3.0,
        };
        assert!(normalize(&mut voice, bad).is_err());
    }
}
