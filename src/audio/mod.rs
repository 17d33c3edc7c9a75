//! The audio pipeline: decode provider output, resample, join, normalize loudness, encode, peaks.
//!
//! Everything here is synchronous and CPU-bound: async callers run it in `spawn_blocking`.
//! Samples are `f32` in -1.0..=1.0, interleaved when there is more than one channel.

mod decode;
mod encode;
mod join;
mod loudness;
mod master;
mod peaks;
mod resample;

pub use decode::{Probe, decode, probe};
pub use encode::{Chapter, Cover, Id3Tags, Mp3Encoder, encode_mp3, encode_wav};
pub use join::{Joined, Joiner, Part, Span, join};
pub use loudness::{Loudness, LoudnessTarget, Normalized, measure, normalize};
pub use master::{Encoding, MasterOptions, Mastered, SourcePart, master_episode};
pub use peaks::{Peaks, peaks};
pub use resample::{conform, resample};

/// Errors of the audio pipeline. Bad provider output is `Decode`; the rest are bugs or
/// impossible requests, which callers report as internal errors.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("could not decode {format} audio: {reason}")]
    Decode {
        format: &'static str,
        reason: String,
    },
    #[error("parts to join differ: {0}")]
    Mismatch(String),
    #[error("invalid audio parameters: {0}")]
    Invalid(String),
    #[error("could not encode audio: {0}")]
    Encode(String),
}

pub type Result<T, E = AudioError> = std::result::Result<T, E>;

/// The one audio-format type: what a provider returned, what a stored object holds, what a
/// caller asks a provider for, and what [`decode`] and [`probe`] are handed.
///
/// Containers are detected from the bytes themselves; the format is a hint (and the name used
/// in error messages), so an MP3 labelled as WAV still decodes. Raw PCM has no header, so its
/// parameters travel with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mp3,
    Wav,
    Flac,
    /// Ogg Vorbis or Opus.
    Ogg,
    /// Headerless signed 16-bit little-endian samples (OpenAI `pcm`, ElevenLabs `pcm_*`,
    /// Tencent `pcm`, the neural voices).
    PcmS16Le {
        sample_rate: u32,
        channels: u16,
    },
}

impl Format {
    /// The usual file extension, which is also the name used in messages and stored keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Ogg => "ogg",
            Self::PcmS16Le { .. } => "pcm",
        }
    }

    /// The container an extension names; raw PCM has none, since its bytes do not say their
    /// rate.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "mp3" => Some(Self::Mp3),
            "wav" => Some(Self::Wav),
            "flac" => Some(Self::Flac),
            "ogg" => Some(Self::Ogg),
            _ => None,
        }
    }

    /// The MIME type to store and serve the bytes with.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Ogg => "audio/ogg",
            Self::PcmS16Le { .. } => "audio/L16",
        }
    }

    /// Headerless samples: bytes that cannot be stored or served as they are.
    pub fn is_raw(self) -> bool {
        matches!(self, Self::PcmS16Le { .. })
    }

    /// A cheap check of the leading bytes, so an HTML error page or a truncated body is
    /// caught (and retried) where it arrives instead of failing later in the decoder.
    pub fn looks_like(self, bytes: &[u8]) -> bool {
        match self {
            Self::Mp3 => {
                bytes.starts_with(b"ID3")
                    || (bytes.len() >= 4 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
            }
            Self::Wav => bytes.len() > 44 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
            Self::PcmS16Le { channels, .. } => {
                !bytes.is_empty() && bytes.len().is_multiple_of(2 * usize::from(channels.max(1)))
            }
            Self::Ogg => bytes.starts_with(b"OggS"),
            Self::Flac => bytes.starts_with(b"fLaC"),
        }
    }
}

/// Decoded audio: the common currency of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved frames: `samples.len()` is always a multiple of `channels`.
    pub samples: Vec<f32>,
}

impl Pcm {
    pub fn new(sample_rate: u32, channels: u16, samples: Vec<f32>) -> Result<Self> {
        if sample_rate == 0 || channels == 0 {
            return Err(AudioError::Invalid(format!(
                "{sample_rate} Hz with {channels} channels"
            )));
        }
        if !samples.len().is_multiple_of(usize::from(channels)) {
            return Err(AudioError::Invalid(format!(
                "{} samples do not make whole frames of {channels} channels",
                samples.len()
            )));
        }
        Ok(Self {
            sample_rate,
            channels,
            samples,
        })
    }

    /// `ms` milliseconds of digital silence.
    pub fn silence(sample_rate: u32, channels: u16, ms: u32) -> Self {
        let frames = ms_to_frames(u64::from(ms), sample_rate);
        Self {
            sample_rate,
            channels,
            samples: vec![0.0; frames * usize::from(channels)],
        }
    }

    /// Number of frames (one sample per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Exact duration from the sample count, rounded to the nearest millisecond.
    pub fn duration_ms(&self) -> u64 {
        frames_to_ms(self.frames(), self.sample_rate)
    }

    /// Averages the channels into one; a mono input is returned as is.
    pub fn into_mono(self) -> Self {
        if self.channels == 1 {
            return self;
        }
        let channels = usize::from(self.channels);
        let scale = 1.0 / channels as f32;
        let samples = self
            .samples
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale)
            .collect();
        Self {
            sample_rate: self.sample_rate,
            channels: 1,
            samples,
        }
    }
}

/// Milliseconds of `frames` at `sample_rate`, rounded to the nearest millisecond.
pub fn frames_to_ms(frames: usize, sample_rate: u32) -> u64 {
    if sample_rate == 0 {
        return 0;
    }
    let rate = u128::from(sample_rate);
    ((frames as u128 * 1000 + rate / 2) / rate) as u64
}

/// Frames in `ms` milliseconds at `sample_rate`, rounded to the nearest frame.
pub fn ms_to_frames(ms: u64, sample_rate: u32) -> usize {
    ((u128::from(ms) * u128::from(sample_rate) + 500) / 1000) as usize
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_is_exact_from_the_sample_count() {
        let pcm = Pcm::new(24_000, 1, vec![0.0; 36_000]).unwrap();
        assert_eq!(pcm.duration_ms(), 1500);
        let stereo = Pcm::new(44_100, 2, vec![0.0; 2 * 44_100 * 3]).unwrap();
        assert_eq!(stereo.duration_ms(), 3000);
        assert_eq!(frames_to_ms(22_050 + 11, 22_050), 1000);
        assert_eq!(frames_to_ms(22_050 + 12, 22_050), 1001);
        assert_eq!(ms_to_frames(350, 22_050), 7718);
    }

    #[test]
    fn pcm_rejects_partial_frames_and_zero_rates() {
        assert!(Pcm::new(24_000, 2, vec![0.0; 3]).is_err());
        assert!(Pcm::new(0, 1, vec![]).is_err());
        assert!(Pcm::new(24_000, 0, vec![]).is_err());
    }

    #[test]
    fn audio_sniffing_accepts_real_headers_and_rejects_text() {
        assert!(Format::Mp3.looks_like(b"ID3\x04\0\0\0\0\0\0"));
        assert!(Format::Mp3.looks_like(&[0xFF, 0xFB, 0x90, 0xC4, 0, 0]));
        assert!(!Format::Mp3.looks_like(b"<html>oops</html>"));
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.resize(100, 0);
        assert!(Format::Wav.looks_like(&wav));
        assert!(!Format::Wav.looks_like(b"{\"error\":1}"));
        let pcm = Format::PcmS16Le {
            sample_rate: 24000,
            channels: 1,
        };
        assert!(pcm.looks_like(&[0, 0, 1, 0]));
        assert!(!pcm.looks_like(&[0, 0, 1]));
        assert!(!pcm.looks_like(&[]));
    }

    #[test]
    fn container_extensions_round_trip_and_raw_pcm_has_none() {
        for format in [Format::Mp3, Format::Wav, Format::Flac, Format::Ogg] {
            assert_eq!(Format::from_extension(format.extension()), Some(format));
            assert!(!format.is_raw());
        }
        let pcm = Format::PcmS16Le {
            sample_rate: 24000,
            channels: 1,
        };
        assert!(pcm.is_raw());
        assert_eq!(Format::from_extension(pcm.extension()), None);
        assert_eq!(Format::from_extension("json"), None);
    }

    #[test]
    fn downmixing_averages_the_channels() {
        let pcm = Pcm::new(8000, 2, vec![0.5, -0.5, 1.0, 0.0]).unwrap();
        let mono = pcm.into_mono();
        assert_eq!(mono.channels, 1);
        assert_eq!(mono.samples, vec![0.0, 0.5]);
    }
}
