//! The audio pipeline: decode provider output and uploaded recordings, resample, join,
//! normalize loudness, encode (MP3, Opus, FLAC, WAV, PCM; whole or as it is made), peaks, and
//! split long recordings at silences for speech recognition.
//!
//! Everything here is synchronous and CPU-bound: async callers run it in `spawn_blocking`.
//! Samples are `f32` in -1.0..=1.0, interleaved when there is more than one channel.

mod decode;
mod encode;
mod join;
mod loudness;
mod master;
mod opus;
mod output;
mod peaks;
mod resample;
mod split;

pub use decode::{
    Probe, RECOGNITION_RATE, RECORDING_FORMATS, decode, decode_for_recognition, decode_recording,
    for_recognition, probe,
};
pub use encode::{Chapter, Cover, Id3Tags, Mp3Encoder, encode_mp3, encode_wav};
pub use join::{Joined, Joiner, Part, Span, join};
pub use loudness::{Loudness, LoudnessTarget, Normalized, measure, normalize};
pub use master::{MasterOptions, Mastered, SourcePart, master_episode};
pub use opus::{OpusEncoder, encode_opus};
pub use output::{Encoding, PCM_OUTPUT_RATE, RESPONSE_FORMATS, StreamEncoder, encode, encode_flac};
pub use peaks::{Peaks, peaks};
pub use resample::{StreamResampler, conform, resample};
pub use split::{Cut, Piece, SplitLimits, encode_piece, split, split_first_within};

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
    /// An output format that cannot be produced (e.g. `aac`); the message lists those that can.
    #[error("{format} audio cannot be produced; the formats available are {}", RESPONSE_FORMATS.join(", "))]
    Unencodable { format: String },
    /// Bytes that are no audio format [`decode_recording`] reads; the message lists them.
    #[error("the file is not audio in a supported format ({})", RECORDING_FORMATS.join(", "))]
    Unsupported,
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
    /// MPEG-4 audio (`.m4a`, `.mp4`): AAC-LC.
    Mp4,
    /// WebM or Matroska: Opus or Vorbis (what browsers record).
    Webm,
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
            Self::Mp4 => "m4a",
            Self::Webm => "webm",
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
            "ogg" | "oga" | "opus" => Some(Self::Ogg),
            "m4a" | "mp4" => Some(Self::Mp4),
            "webm" => Some(Self::Webm),
            _ => None,
        }
    }

    /// The container the leading bytes announce (magic numbers), whatever a file is called;
    /// `None` for anything else, raw PCM included.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        [
            Self::Flac,
            Self::Ogg,
            Self::Wav,
            Self::Mp4,
            Self::Webm,
            Self::Mp3,
        ]
        .into_iter()
        .find(|format| format.looks_like(bytes))
    }

    /// The MIME type to store and serve the bytes with.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Mp3 => "audio/mpeg",
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Ogg => "audio/ogg",
            Self::Mp4 => "audio/mp4",
            Self::Webm => "audio/webm",
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
            Self::Mp3 => bytes.starts_with(b"ID3") || is_mpeg_audio_frame(bytes),
            Self::Wav => bytes.len() > 44 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
            Self::PcmS16Le { channels, .. } => {
                !bytes.is_empty() && bytes.len().is_multiple_of(2 * usize::from(channels.max(1)))
            }
            Self::Ogg => bytes.starts_with(b"OggS"),
            Self::Flac => bytes.starts_with(b"fLaC"),
            Self::Mp4 => bytes.len() >= 12 && &bytes[4..8] == b"ftyp",
            Self::Webm => bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
        }
    }
}

/// An MPEG audio frame header: the sync bits, then a version, a layer (not the "reserved"
/// 00 that ADTS AAC puts there), a bitrate and a sample rate that exist.
fn is_mpeg_audio_frame(bytes: &[u8]) -> bool {
    let [a, b, c, ..] = *bytes else {
        return false;
    };
    a == 0xFF
        && b & 0xE0 == 0xE0
        && (b >> 3) & 0b11 != 0b01
        && (b >> 1) & 0b11 != 0
        && c >> 4 != 0b1111
        && (c >> 2) & 0b11 != 0b11
}

/// A sample in -1.0..=1.0 as 16-bit, rounded and clipped (over-range input clips instead of
/// wrapping around).
pub(crate) fn to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
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

/// Signals made in code for the tests and the bench.
#[doc(hidden)]
pub mod testing;

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
        for format in [
            Format::Mp3,
            Format::Wav,
            Format::Flac,
            Format::Ogg,
            Format::Mp4,
            Format::Webm,
        ] {
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
