//! Test signals made in code, so tests need no audio files.

use super::Pcm;
use std::f32::consts::TAU;

/// A pure tone at `amplitude` (linear, 0..1).
pub fn sine(sample_rate: u32, channels: u16, freq: f32, amplitude: f32, ms: u32) -> Pcm {
    let frames = super::ms_to_frames(u64::from(ms), sample_rate);
    let mut samples = Vec::with_capacity(frames * usize::from(channels));
    for n in 0..frames {
        let v = amplitude * (TAU * freq * n as f32 / sample_rate as f32).sin();
        samples.extend(std::iter::repeat_n(v, usize::from(channels)));
    }
    Pcm::new(sample_rate, channels, samples).unwrap()
}

/// Voice-like audio: syllables of a 120-200 Hz buzz with a few harmonics, an envelope at about
/// 4 syllables a second, short gaps between words and occasional sharp peaks. `seed` varies
/// pitch and rhythm so two "speakers" differ.
pub fn speech(sample_rate: u32, ms: u32, amplitude: f32, seed: u32) -> Pcm {
    let frames = super::ms_to_frames(u64::from(ms), sample_rate);
    let rate = sample_rate as f32;
    let mut rng = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng as f32 / u32::MAX as f32
    };
    let f0 = 120.0 + 80.0 * next();
    let mut samples = Vec::with_capacity(frames);
    let mut phase = 0.0f32;
    let mut syllable_left = 0usize;
    let mut syllable_len = 1usize;
    let mut voiced = true;
    for _ in 0..frames {
        if syllable_left == 0 {
            voiced = next() > 0.2;
            syllable_len = ((0.12 + 0.2 * next()) * rate) as usize;
            syllable_left = syllable_len;
        }
        let t = 1.0 - syllable_left as f32 / syllable_len as f32;
        syllable_left -= 1;
        let envelope = if voiced {
            (std::f32::consts::PI * t).sin()
        } else {
            0.0
        };
        phase = (phase + f0 / rate) % 1.0;
        let buzz = (TAU * phase).sin()
            + 0.6 * (2.0 * TAU * phase).sin()
            + 0.4 * (3.0 * TAU * phase).sin()
            + 0.25 * (5.0 * TAU * phase).sin();
        samples.push(amplitude * envelope * buzz / 2.25);
    }
    Pcm::new(sample_rate, 1, samples).unwrap()
}

/// `seconds` of speech-like sound at 16 kHz mono for the silence splitter to cut: bursts of
/// 2 to 8 s (a buzz with noise) between pauses of 0.4 to 1.2 s of faint noise. The same
/// seconds give the same samples.
pub fn talk(seconds: u32) -> Pcm {
    let rate = 16_000usize;
    let total = rate * seconds as usize;
    let mut samples = Vec::with_capacity(total);
    let mut rng: u32 = 0x9E37_79B9;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        rng
    };
    let mut phase = 0f32;
    while samples.len() < total {
        let burst = (2000 + next() % 6000) as usize * rate / 1000;
        let pitch = 150.0 + (next() % 100) as f32;
        for _ in 0..burst {
            phase = (phase + pitch / rate as f32) % 1.0;
            let noise = next() as f32 / u32::MAX as f32 - 0.5;
            samples.push(0.2 * (TAU * phase).sin() + 0.05 * noise);
        }
        let pause = (400 + next() % 800) as usize * rate / 1000;
        for _ in 0..pause {
            samples.push(0.002 * (next() as f32 / u32::MAX as f32 - 0.5));
        }
    }
    samples.truncate(total);
    Pcm::new(16_000, 1, samples).unwrap()
}

/// Runs the local voice engine (installed by `.ci/run` and `make espeak`) and returns stdout.
pub fn espeak(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("espeak-ng")
        .args(args)
        .output()
        .expect("espeak-ng is installed (make espeak)");
    assert!(output.status.success(), "espeak-ng failed: {output:?}");
    output.stdout
}

/// Root mean square of all samples, for comparing levels.
pub fn rms(pcm: &Pcm) -> f32 {
    let sum: f64 = pcm.samples.iter().map(|&s| f64::from(s * s)).sum();
    (sum / pcm.samples.len().max(1) as f64).sqrt() as f32
}
