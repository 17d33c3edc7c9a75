//! Sample-rate conversion (rubato's FFT resampler) and channel conforming.

use super::{AudioError, Pcm, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Input frames per FFT chunk: large enough to be efficient, small enough to keep the
/// resampler's scratch memory trivial.
const CHUNK_FRAMES: usize = 2048;

/// Converts to `sample_rate`, keeping the duration: the output has
/// `ceil(frames * out / in)` frames and the resampler's delay is trimmed off.
pub fn resample(pcm: Pcm, sample_rate: u32) -> Result<Pcm> {
    if sample_rate == 0 {
        return Err(AudioError::Invalid("target sample rate 0".into()));
    }
    if pcm.sample_rate == sample_rate || pcm.samples.is_empty() {
        return Ok(Pcm { sample_rate, ..pcm });
    }
    let channels = usize::from(pcm.channels);
    let frames = pcm.frames();
    let invalid = |e: &dyn std::fmt::Display| AudioError::Invalid(format!("resampling: {e}"));
    let mut resampler = Fft::<f32>::new(
        pcm.sample_rate as usize,
        sample_rate as usize,
        CHUNK_FRAMES,
        channels,
        FixedSync::Input,
    )
    .map_err(|e| invalid(&e))?;
    let input = InterleavedSlice::new(&pcm.samples, channels, frames).map_err(|e| invalid(&e))?;
    let output = resampler
        .process_all(&input, frames, None)
        .map_err(|e| invalid(&e))?;
    Pcm::new(sample_rate, pcm.channels, output.take_data())
}

/// Brings audio to a rate and channel count: averages down to mono, or copies mono to every
/// channel, then resamples. Parts from different providers meet here before being joined.
pub fn conform(pcm: Pcm, sample_rate: u32, channels: u16) -> Result<Pcm> {
    let pcm = match (pcm.channels, channels) {
        (from, to) if from == to => pcm,
        (_, 1) => pcm.into_mono(),
        (1, to) if to > 1 => {
            let samples = pcm
                .samples
                .iter()
                .flat_map(|&s| std::iter::repeat_n(s, usize::from(to)))
                .collect();
            Pcm::new(pcm.sample_rate, to, samples)?
        }
        (from, to) => {
            return Err(AudioError::Invalid(format!(
                "cannot map {from} channels to {to}"
            )));
        }
    };
    resample(pcm, sample_rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{rms, sine, speech};

    #[test]
    fn resampling_keeps_the_duration_and_the_level() {
        for (from, to) in [(22_050, 24_000), (22_050, 44_100), (44_100, 24_000)] {
            let tone = sine(from, 1, 440.0, 0.5, 1500);
            let out = resample(tone.clone(), to).unwrap();
            assert_eq!(out.sample_rate, to);
            assert_eq!(out.duration_ms(), 1500, "{from} -> {to}");
            let expected = (tone.frames() as u64 * u64::from(to)).div_ceil(u64::from(from));
            assert_eq!(out.frames() as u64, expected, "{from} -> {to}");
            let (a, b) = (rms(&tone), rms(&out));
            assert!((a - b).abs() / a < 0.02, "{from} -> {to}: rms {a} vs {b}");
        }
    }

    #[test]
    fn resampling_keeps_the_timing_of_a_sound() {
        // A click at 1.000 s must stay at 1.000 s: the resampler's delay is trimmed.
        let mut pcm = Pcm::silence(22_050, 1, 2000);
        pcm.samples[22_050] = 1.0;
        let out = resample(pcm, 48_000).unwrap();
        let peak = out
            .samples
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((peak as i64 - 48_000).abs() <= 2, "click at frame {peak}");
    }

    #[test]
    fn conforming_downmixes_and_upmixes() {
        let voice = speech(22_050, 500, 0.5, 1);
        let stereo = conform(voice.clone(), 22_050, 2).unwrap();
        assert_eq!(stereo.channels, 2);
        assert_eq!(stereo.samples[..2], [voice.samples[0]; 2]);
        let mono = conform(stereo, 24_000, 1).unwrap();
        assert_eq!(
            (mono.channels, mono.sample_rate, mono.duration_ms()),
            (1, 24_000, 500)
        );
        let same = conform(voice.clone(), 22_050, 1).unwrap();
        assert_eq!(same, voice);
    }
}
