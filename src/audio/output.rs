//! Every output format in one place: which encodings exist, encoding a whole file, and
//! encoding as the audio is made (for answers sent while they are synthesized).

use super::opus::OpusEncoder;
use super::resample::StreamResampler;
use super::{AudioError, Format, Mp3Encoder, Pcm, Result, conform, encode_mp3, encode_wav, to_i16};

/// How finished audio is encoded: a [`Format`] the pipeline can write, with its encoder's
/// settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Constant bitrate MP3 (8..=320 kbps) at the audio's rate.
    Mp3 { bitrate_kbps: u32 },
    /// Opus in an Ogg container (6..=510 kbps); rates Opus does not take become 48 kHz.
    Opus { bitrate_kbps: u32 },
    /// 16-bit FLAC at the audio's rate.
    Flac,
    /// 16-bit WAV at the audio's rate.
    Wav,
    /// Headerless 16-bit little-endian samples, 24 kHz mono (what OpenAI's `pcm` is); other
    /// rates and layouts are converted.
    Pcm,
}

/// The rate and layout of [`Encoding::Pcm`].
pub const PCM_OUTPUT_RATE: u32 = 24_000;

/// The speech API's `response_format` names that can be produced, in the order to list them.
pub const RESPONSE_FORMATS: [&str; 5] = ["mp3", "opus", "flac", "wav", "pcm"];

impl Encoding {
    /// The encoding for one of the speech API's `response_format` names, at bitrates that
    /// suit speech. `aac` (and any unknown name) is [`AudioError::Unencodable`], whose message
    /// lists [`RESPONSE_FORMATS`].
    pub fn for_response_format(name: &str) -> Result<Self> {
        Ok(match name {
            "mp3" => Self::Mp3 { bitrate_kbps: 64 },
            "opus" => Self::Opus { bitrate_kbps: 32 },
            "flac" => Self::Flac,
            "wav" => Self::Wav,
            "pcm" => Self::Pcm,
            other => {
                return Err(AudioError::Unencodable {
                    format: other.to_string(),
                });
            }
        })
    }

    /// The format of the bytes this encoding writes.
    pub fn format(self) -> Format {
        match self {
            Self::Mp3 { .. } => Format::Mp3,
            Self::Opus { .. } => Format::Ogg,
            Self::Flac => Format::Flac,
            Self::Wav => Format::Wav,
            Self::Pcm => Format::PcmS16Le {
                sample_rate: PCM_OUTPUT_RATE,
                channels: 1,
            },
        }
    }

    /// Lossy encodings add a little to the true peak.
    pub(super) fn is_lossy(self) -> bool {
        matches!(self, Self::Mp3 { .. } | Self::Opus { .. })
    }
}

/// Encodes a whole file. MP3 carries its gapless info frame (no tags); see [`encode_mp3`].
pub fn encode(pcm: &Pcm, encoding: Encoding) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Mp3 { bitrate_kbps } => encode_mp3(pcm, bitrate_kbps, None),
        Encoding::Opus { bitrate_kbps } => super::opus::encode_opus(pcm, bitrate_kbps),
        Encoding::Flac => encode_flac(pcm),
        Encoding::Wav => encode_wav(pcm),
        Encoding::Pcm => {
            let pcm = conform(pcm.clone(), PCM_OUTPUT_RATE, 1)?;
            let mut out = Vec::with_capacity(pcm.samples.len() * 2);
            push_s16le(&pcm.samples, &mut out);
            Ok(out)
        }
    }
}

fn push_s16le(samples: &[f32], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for &s in samples {
        out.extend_from_slice(&to_i16(s).to_le_bytes());
    }
}

/// 16-bit FLAC (`flacenc`, its default settings: 4096-frame blocks, LPC up to order 8), samples
/// rounded and clipped like [`encode_wav`].
pub fn encode_flac(pcm: &Pcm) -> Result<Vec<u8>> {
    flac(&pcm.samples, pcm.sample_rate, pcm.channels)
}

/// [`encode_flac`] of interleaved samples (a part of a recording, without copying it out).
pub(super) fn flac(samples: &[f32], sample_rate: u32, channels: u16) -> Result<Vec<u8>> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    if !(1..=8).contains(&channels) || !samples.len().is_multiple_of(usize::from(channels)) {
        return Err(AudioError::Invalid(format!(
            "flac of {} samples in {channels} channels",
            samples.len()
        )));
    }
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| AudioError::Encode(format!("flac settings: {e:?}")))?;
    let samples: Vec<i32> = samples.iter().map(|&s| i32::from(to_i16(s))).collect();
    let source = flacenc::source::MemSource::from_samples(
        &samples,
        usize::from(channels),
        16,
        sample_rate as usize,
    );
    let mut stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| AudioError::Encode(format!("flac: {e:?}")))?;
    // FLAC's minimum block size leaves out the last block; flacenc counts it, which makes
    // strict decoders (symphonia) take the stream for a variable-block one and reject it.
    stream
        .stream_info_mut()
        .set_block_sizes(config.block_size, config.block_size)
        .map_err(|e| AudioError::Encode(format!("flac block sizes: {e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| AudioError::Encode(format!("flac: {e:?}")))?;
    Ok(sink.into_inner())
}

/// Encoding as the audio is made: [`push`](Self::push) samples as they come and send what it
/// appends, then [`finish`](Self::finish). MP3, Opus, WAV and PCM bytes come out as they are
/// encoded; FLAC's header holds the length and checksum of the whole, so FLAC comes out
/// whole from `finish`.
///
/// Streamed MP3 has no gapless info frame (about 50 ms of encoder delay play first), and
/// streamed WAV's header carries the "unknown length" sizes (0xFFFFFFFF) streaming servers
/// write, which players and [`decode`](super::decode) accept.
pub struct StreamEncoder {
    inner: Inner,
    channels: u16,
}

enum Inner {
    Mp3(Mp3Encoder),
    Opus(Box<OpusEncoder>),
    Flac(Pcm),
    Wav { header: Option<[u8; 44]> },
    Pcm(Option<Box<StreamResampler>>),
}

impl StreamEncoder {
    /// For audio at `sample_rate` with `channels` interleaved channels.
    pub fn new(encoding: Encoding, sample_rate: u32, channels: u16) -> Result<Self> {
        if sample_rate == 0 || channels == 0 {
            return Err(AudioError::Invalid(format!(
                "{sample_rate} Hz with {channels} channels"
            )));
        }
        let inner = match encoding {
            Encoding::Mp3 { bitrate_kbps } => {
                Inner::Mp3(Mp3Encoder::new(sample_rate, channels, bitrate_kbps)?)
            }
            Encoding::Opus { bitrate_kbps } => Inner::Opus(Box::new(OpusEncoder::new(
                sample_rate,
                channels,
                bitrate_kbps,
            )?)),
            Encoding::Flac => Inner::Flac(Pcm::new(sample_rate, channels, Vec::new())?),
            Encoding::Wav => Inner::Wav {
                header: Some(streamed_wav_header(sample_rate, channels)),
            },
            Encoding::Pcm => Inner::Pcm(if sample_rate == PCM_OUTPUT_RATE {
                None
            } else {
                Some(Box::new(StreamResampler::new(
                    sample_rate,
                    PCM_OUTPUT_RATE,
                    1,
                )?))
            }),
        };
        Ok(Self { inner, channels })
    }

    /// Encodes interleaved samples, appending the bytes ready so far to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<()> {
        let width = usize::from(self.channels);
        if !samples.len().is_multiple_of(width) {
            return Err(AudioError::Invalid("partial frame".into()));
        }
        match &mut self.inner {
            Inner::Mp3(encoder) => encoder.encode(samples, out),
            Inner::Opus(encoder) => encoder.encode(samples, out),
            Inner::Flac(pcm) => {
                pcm.samples.extend_from_slice(samples);
                Ok(())
            }
            Inner::Wav { header } => {
                if let Some(header) = header.take() {
                    out.extend_from_slice(&header);
                }
                push_s16le(samples, out);
                Ok(())
            }
            Inner::Pcm(resampler) => {
                let mono = downmix(samples, width);
                match resampler {
                    Some(resampler) => {
                        let mut resampled = Vec::with_capacity(mono.len() * 2);
                        resampler.process(&mono, &mut resampled)?;
                        push_s16le(&resampled, out);
                    }
                    None => push_s16le(&mono, out),
                }
                Ok(())
            }
        }
    }

    /// Appends the last bytes (all of them, for FLAC).
    pub fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        match self.inner {
            Inner::Mp3(encoder) => encoder.finish(out),
            Inner::Opus(encoder) => encoder.finish(out),
            Inner::Flac(pcm) => {
                out.extend_from_slice(&encode_flac(&pcm)?);
                Ok(())
            }
            Inner::Wav { header } => {
                if let Some(header) = header {
                    out.extend_from_slice(&header);
                }
                Ok(())
            }
            Inner::Pcm(Some(resampler)) => {
                let mut tail = Vec::new();
                resampler.finish(&mut tail)?;
                push_s16le(&tail, out);
                Ok(())
            }
            Inner::Pcm(None) => Ok(()),
        }
    }
}

fn downmix(samples: &[f32], width: usize) -> std::borrow::Cow<'_, [f32]> {
    if width == 1 {
        return std::borrow::Cow::Borrowed(samples);
    }
    let scale = 1.0 / width as f32;
    samples
        .chunks_exact(width)
        .map(|frame| frame.iter().sum::<f32>() * scale)
        .collect()
}

/// A 16-bit PCM WAV header whose RIFF and data sizes say "unknown" (0xFFFFFFFF).
fn streamed_wav_header(sample_rate: u32, channels: u16) -> [u8; 44] {
    let block_align = channels * 2;
    let mut header = [0u8; 44];
    header[0..4].copy_from_slice(b"RIFF");
    header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    header[8..16].copy_from_slice(b"WAVEfmt ");
    header[16..20].copy_from_slice(&16u32.to_le_bytes());
    header[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    header[22..24].copy_from_slice(&channels.to_le_bytes());
    header[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    header[28..32].copy_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    header[32..34].copy_from_slice(&block_align.to_le_bytes());
    header[34..36].copy_from_slice(&16u16.to_le_bytes());
    header[36..40].copy_from_slice(b"data");
    header[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{sine, speech};
    use crate::audio::{conform, decode};

    #[test]
    fn flac_decodes_to_exactly_the_16_bit_samples_it_was_made_from() {
        for (rate, channels) in [(16_000, 1), (44_100, 2), (22_050, 1)] {
            let mut voice = conform(speech(rate, 1500, 0.7, 9), rate, channels).unwrap();
            // Over-range samples clip like WAV's.
            voice.samples[10] = 1.5;
            voice.samples[11] = -1.5;
            let flac = encode_flac(&voice).unwrap();
            assert!(Format::Flac.looks_like(&flac));
            let back = decode(&flac, Format::Flac).unwrap();
            assert_eq!((back.sample_rate, back.channels), (rate, channels));
            let expected: Vec<i16> = voice.samples.iter().map(|&s| to_i16(s)).collect();
            let got: Vec<i16> = back.samples.iter().map(|&s| to_i16(s)).collect();
            assert!(expected == got, "{rate} Hz x{channels} differs");
            assert_eq!(got[10..12], [i16::MAX, i16::MIN]);
            // Lossless and still smaller than 16-bit PCM.
            assert!(flac.len() < voice.samples.len() * 2);
        }
    }

    #[test]
    fn every_response_format_encodes_audio_that_decodes_to_its_length() {
        let voice = speech(24_000, 2000, 0.5, 4);
        for name in RESPONSE_FORMATS {
            let encoding = Encoding::for_response_format(name).unwrap();
            let bytes = encode(&voice, encoding).unwrap();
            let format = encoding.format();
            assert!(format.looks_like(&bytes), "{name}");
            if !format.is_raw() {
                assert_eq!(Format::sniff(&bytes), Some(format), "{name}");
            }
            let back = decode(&bytes, format).unwrap();
            let diff = back.duration_ms().abs_diff(2000);
            assert!(diff <= 1, "{name}: {} ms", back.duration_ms());
        }
        // OpenAI's pcm is 24 kHz mono whatever the audio was.
        let stereo = sine(44_100, 2, 440.0, 0.5, 1000);
        let pcm = encode(&stereo, Encoding::Pcm).unwrap();
        assert_eq!(pcm.len(), 24_000 * 2);
    }

    #[test]
    fn aac_and_unknown_formats_are_refused_with_the_formats_that_can_be_made() {
        for name in ["aac", "ogg", "MP3", ""] {
            let err = Encoding::for_response_format(name).unwrap_err();
            assert!(matches!(&err, AudioError::Unencodable { format } if format == name));
            let message = err.to_string();
            assert!(
                message.contains("mp3, opus, flac, wav, pcm") && message.starts_with(name),
                "{message}"
            );
        }
    }

    #[test]
    fn streaming_encoders_send_bytes_as_they_come_and_decode_to_the_whole() {
        let voice = speech(22_050, 3000, 0.5, 6);
        for name in RESPONSE_FORMATS {
            let encoding = Encoding::for_response_format(name).unwrap();
            let mut encoder = StreamEncoder::new(encoding, 22_050, 1).unwrap();
            let mut out = Vec::new();
            let mut before_finish = 0;
            for piece in voice.samples.chunks(4410) {
                encoder.push(piece, &mut out).unwrap();
                before_finish = out.len();
            }
            encoder.finish(&mut out).unwrap();
            if encoding == Encoding::Flac {
                assert_eq!(before_finish, 0, "flac comes whole at the end");
            } else {
                assert!(
                    before_finish > out.len() / 2,
                    "{name}: {before_finish} of {}",
                    out.len()
                );
            }
            let back = decode(&out, encoding.format()).unwrap();
            let ms = back.duration_ms();
            // Streamed MP3 keeps LAME's delay and padding (no info frame).
            let slack = if name == "mp3" { 150 } else { 1 };
            assert!(ms >= 3000 - 1 && ms <= 3000 + slack, "{name}: {ms} ms");
        }
    }

    #[test]
    fn a_streamed_wav_says_its_length_is_unknown_and_still_decodes_whole() {
        let tone = sine(16_000, 2, 440.0, 0.5, 700);
        let mut encoder = StreamEncoder::new(Encoding::Wav, 16_000, 2).unwrap();
        let mut out = Vec::new();
        encoder.push(&tone.samples, &mut out).unwrap();
        encoder.finish(&mut out).unwrap();
        assert_eq!(&out[40..44], &[0xFF; 4]);
        assert_eq!(out.len(), 44 + tone.samples.len() * 2);
        let back = decode(&out, Format::Wav).unwrap();
        assert_eq!((back.frames(), back.channels), (tone.frames(), 2));
        // Nothing pushed: a header and no samples.
        let mut empty = Vec::new();
        StreamEncoder::new(Encoding::Wav, 16_000, 1)
            .unwrap()
            .finish(&mut empty)
            .unwrap();
        assert_eq!(empty.len(), 44);
    }

    #[test]
    fn streamed_pcm_is_24_khz_mono_of_the_exact_length() {
        let stereo = sine(44_100, 2, 300.0, 0.5, 1234);
        let mut encoder = StreamEncoder::new(Encoding::Pcm, 44_100, 2).unwrap();
        let mut out = Vec::new();
        for piece in stereo.samples.chunks(2 * 999) {
            encoder.push(piece, &mut out).unwrap();
        }
        encoder.finish(&mut out).unwrap();
        let expected = (stereo.frames() as u64 * 24_000).div_ceil(44_100) as usize;
        assert_eq!(out.len(), expected * 2);
        // The same samples as the whole file, to a rounding step.
        let whole = encode(&stereo, Encoding::Pcm).unwrap();
        assert_eq!(whole.len(), out.len());
        let worst = out
            .chunks_exact(2)
            .zip(whole.chunks_exact(2))
            .map(|(a, b)| {
                let (a, b) = (
                    i16::from_le_bytes([a[0], a[1]]),
                    i16::from_le_bytes([b[0], b[1]]),
                );
                (i32::from(a) - i32::from(b)).abs()
            })
            .max()
            .unwrap();
        assert!(worst <= 1, "{worst}");
        assert!(matches!(
            StreamEncoder::new(Encoding::Pcm, 44_100, 2)
                .unwrap()
                .push(&[0.0; 3], &mut out),
            Err(AudioError::Invalid(_))
        ));
    }
}
