//! Sample-rate conversion (rubato's FFT resampler) and channel conforming.

use super::{AudioError, Pcm, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

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
    let mut samples = output.take_data();
    // rubato computes the length in floating point, which can round up one frame too many
    // (44.1 kHz to 24 kHz); the exact length is integer arithmetic.
    let expected = (frames as u64 * u64::from(sample_rate)).div_ceil(u64::from(pcm.sample_rate));
    samples.truncate(expected as usize * channels);
    Pcm::new(sample_rate, pcm.channels, samples)
}

/// Sample-rate conversion for audio that arrives piece by piece: the same resampler and the
/// same output as [`resample`] on the whole (`ceil(frames * out / in)` frames, the delay
/// trimmed; the samples unchanged at the same rate), produced as the input comes.
pub struct StreamResampler {
    /// `None` when the rates are the same.
    resampler: Option<Fft<f32>>,
    channels: usize,
    /// Input not yet making a whole chunk, interleaved.
    pending: Vec<f32>,
    output: Vec<f32>,
    /// Leading output frames still to drop (the resampler's delay).
    delay: usize,
    input_frames: u64,
    output_frames: u64,
    from: u32,
    to: u32,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32, channels: u16) -> Result<Self> {
        if from == 0 || to == 0 || channels == 0 {
            return Err(AudioError::Invalid(format!(
                "resampling {from} Hz to {to} Hz with {channels} channels"
            )));
        }
        let channels = usize::from(channels);
        let resampler = if from == to {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    from as usize,
                    to as usize,
                    CHUNK_FRAMES,
                    channels,
                    FixedSync::Input,
                )
                .map_err(|e| AudioError::Invalid(format!("resampling: {e}")))?,
            )
        };
        Ok(Self {
            delay: resampler.as_ref().map_or(0, |r| r.output_delay()),
            output: vec![0.0; resampler.as_ref().map_or(0, |r| r.output_frames_max()) * channels],
            resampler,
            channels,
            pending: Vec::with_capacity(CHUNK_FRAMES * channels),
            input_frames: 0,
            output_frames: 0,
            from,
            to,
        })
    }

    /// Resamples interleaved `samples`, appending the frames that are ready to `out`.
    pub fn process(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<()> {
        if !samples.len().is_multiple_of(self.channels) {
            return Err(AudioError::Invalid("partial frame".into()));
        }
        self.input_frames += (samples.len() / self.channels) as u64;
        let Some(resampler) = &self.resampler else {
            out.extend_from_slice(samples);
            return Ok(());
        };
        let needed = resampler.input_frames_next() * self.channels;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (needed - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == needed {
                self.chunk(None, out)?;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Resamples what is left and appends the last frames, so the output is complete.
    pub fn finish(mut self, out: &mut Vec<f32>) -> Result<()> {
        let Some(resampler) = &self.resampler else {
            return Ok(());
        };
        let needed = resampler.input_frames_next() * self.channels;
        let expected = (self.input_frames * u64::from(self.to)).div_ceil(u64::from(self.from));
        let mut partial = self.pending.len() / self.channels;
        while self.output_frames < expected {
            self.pending.resize(needed, 0.0);
            self.chunk(Some(partial), out)?;
            partial = 0;
        }
        let excess = (self.output_frames - expected) as usize * self.channels;
        out.truncate(out.len().saturating_sub(excess));
        Ok(())
    }

    fn chunk(&mut self, partial: Option<usize>, out: &mut Vec<f32>) -> Result<()> {
        let invalid = |e: &dyn std::fmt::Display| AudioError::Invalid(format!("resampling: {e}"));
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let frames = self.pending.len() / self.channels;
        let input =
            InterleavedSlice::new(&self.pending, self.channels, frames).map_err(|e| invalid(&e))?;
        let capacity = self.output.len() / self.channels;
        let mut output = InterleavedSlice::new_mut(&mut self.output, self.channels, capacity)
            .map_err(|e| invalid(&e))?;
        let indexing = partial.map(|len| Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: Some(len),
            active_channels_mask: None,
        });
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| invalid(&e))?;
        let skip = self.delay.min(produced);
        self.delay -= skip;
        out.extend_from_slice(&self.output[skip * self.channels..produced * self.channels]);
        self.output_frames += (produced - skip) as u64;
        Ok(())
    }
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
        for (from, to, ms) in [
            (22_050, 24_000, 1500),
            (22_050, 44_100, 1500),
            (44_100, 24_000, 1500),
            (44_100, 24_000, 1000),
        ] {
            let tone = sine(from, 1, 440.0, 0.5, ms);
            let out = resample(tone.clone(), to).unwrap();
            assert_eq!(out.sample_rate, to);
            assert_eq!(out.duration_ms(), u64::from(ms), "{from} -> {to}");
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
    fn streaming_resampling_gives_what_resampling_the_whole_gives() {
        for (from, to, channels) in [
            (22_050, 48_000, 1),
            (44_100, 48_000, 2),
            (48_000, 16_000, 1),
        ] {
            let voice = conform(speech(from, 2345, 0.5, 3), from, channels).unwrap();
            let whole = resample(voice.clone(), to).unwrap();
            let mut stream = StreamResampler::new(from, to, channels).unwrap();
            let mut out = Vec::new();
            // Pieces of odd sizes, smaller and larger than the resampler's chunk.
            for piece in voice.samples.chunks(usize::from(channels) * 1001) {
                stream.process(piece, &mut out).unwrap();
            }
            stream.finish(&mut out).unwrap();
            assert_eq!(out.len(), whole.samples.len(), "{from} -> {to}");
            let worst = out
                .iter()
                .zip(&whole.samples)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{from} -> {to}: differs by {worst}");
        }
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
