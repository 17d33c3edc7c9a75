//! Decoding provider output and uploaded recordings (mp3, wav, flac, ogg vorbis and opus,
//! m4a/mp4 AAC, webm opus and vorbis, raw s16le) into [`Pcm`] with symphonia, plus libopus for
//! Opus.

use super::opus::OpusDecoder;
use super::resample::StreamResampler;
use super::{AudioError, Format, Pcm, Result, conform, frames_to_ms};
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// The rate speech recognition works at (and providers take).
pub const RECOGNITION_RATE: u32 = 16_000;

/// The upload formats [`decode_recording`] reads, by the names clients use for them.
pub const RECORDING_FORMATS: [&str; 9] = [
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "ogg", "wav", "webm",
];

/// symphonia's codecs and libopus.
static CODECS: LazyLock<CodecRegistry> = LazyLock::new(|| {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_audio_decoder::<OpusDecoder>();
    registry
});

/// Decodes an uploaded recording, whatever it is called: the container is read from its
/// leading bytes. Bytes that are no supported container are [`AudioError::Unsupported`];
/// a supported container that is corrupt, empty or holds another codec is
/// [`AudioError::Decode`].
pub fn decode_recording(bytes: &[u8]) -> Result<Pcm> {
    let format = Format::sniff(bytes).ok_or(AudioError::Unsupported)?;
    decode(bytes, format)
}

/// What speech recognition takes: mono at [`RECOGNITION_RATE`].
pub fn for_recognition(pcm: Pcm) -> Result<Pcm> {
    conform(pcm, RECOGNITION_RATE, 1)
}

/// [`decode_recording`] then [`for_recognition`], converting as it decodes: only the mono
/// 16 kHz result is held (4 bytes a sample, 230 MB an hour), never the whole recording at its
/// own rate and channels (1.3 GB an hour of 44.1 kHz stereo).
pub fn decode_for_recognition(bytes: &[u8]) -> Result<Pcm> {
    let format = Format::sniff(bytes).ok_or(AudioError::Unsupported)?;
    guarded(format, || {
        let wav = repair_streamed_wav(bytes);
        let mut stream = open(wav.as_deref().unwrap_or(bytes), format)?;
        let mut resampler: Option<StreamResampler> = None;
        let mut failed = None;
        let (mut interleaved, mut mono) = (Vec::new(), Vec::new());
        let mut samples = Vec::new();
        stream.run(|buf| {
            if failed.is_some() {
                return;
            }
            let channels = buf.spec().channels().count().max(1);
            interleaved.resize(buf.samples_interleaved(), 0.0);
            buf.copy_to_slice_interleaved(&mut interleaved);
            mono.clear();
            let scale = 1.0 / channels as f32;
            mono.extend(
                interleaved
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
            let rate = buf.spec().rate();
            let result = match &mut resampler {
                Some(resampler) => resampler.process(&mono, &mut samples),
                None => StreamResampler::new(rate, RECOGNITION_RATE, 1).and_then(|mut r| {
                    let done = r.process(&mono, &mut samples);
                    resampler = Some(r);
                    done
                }),
            };
            if let Err(e) = result {
                failed = Some(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(resampler) = resampler {
            resampler.finish(&mut samples)?;
        }
        Pcm::new(RECOGNITION_RATE, 1, samples)
    })
}

/// Length and layout of encoded audio, read without keeping its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub duration_ms: u64,
    pub sample_rate: u32,
    pub channels: u16,
}

/// Decodes a whole buffer. Garbage, truncated headers and unsupported codecs are errors,
/// never panics; a stream cut short mid-way yields the audio before the cut.
pub fn decode(bytes: &[u8], format: Format) -> Result<Pcm> {
    if let Format::PcmS16Le {
        sample_rate,
        channels,
    } = format
    {
        return decode_s16le(bytes, sample_rate, channels);
    }
    guarded(format, || {
        let wav = repair_streamed_wav(bytes);
        let mut stream = open(wav.as_deref().unwrap_or(bytes), format)?;
        let mut samples = Vec::with_capacity(stream.expected_samples());
        let spec = stream.run(|buf| {
            let start = samples.len();
            samples.resize(start + buf.samples_interleaved(), 0.0);
            buf.copy_to_slice_interleaved(&mut samples[start..]);
        })?;
        Ok(Pcm {
            sample_rate: spec.sample_rate,
            channels: spec.channels,
            samples,
        })
    })
}

/// Duration, rate and channels of encoded audio, exact to the sample (the same figure
/// [`decode`] gives), for files stored as they came from a provider.
pub fn probe(bytes: &[u8], format: Format) -> Result<Probe> {
    if let Format::PcmS16Le {
        sample_rate,
        channels,
    } = format
    {
        let pcm = decode_s16le(bytes, sample_rate, channels)?;
        return Ok(Probe {
            duration_ms: pcm.duration_ms(),
            sample_rate,
            channels,
        });
    }
    guarded(format, || {
        let wav = repair_streamed_wav(bytes);
        let mut stream = open(wav.as_deref().unwrap_or(bytes), format)?;
        let mut frames = 0usize;
        let spec = stream.run(|buf| frames += buf.frames())?;
        Ok(Probe {
            duration_ms: frames_to_ms(frames, spec.sample_rate),
            sample_rate: spec.sample_rate,
            channels: spec.channels,
        })
    })
}

fn decode_s16le(bytes: &[u8], sample_rate: u32, channels: u16) -> Result<Pcm> {
    let frame_bytes = 2 * usize::from(channels);
    if frame_bytes == 0 || sample_rate == 0 || !bytes.len().is_multiple_of(frame_bytes) {
        return Err(AudioError::Decode {
            format: "pcm",
            reason: format!(
                "{} bytes are not whole 16-bit frames of {channels} channels at {sample_rate} Hz",
                bytes.len()
            ),
        });
    }
    let samples = bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    Pcm::new(sample_rate, channels, samples)
}

/// symphonia promises errors for bad input, but a decoder bug must not take a worker down
/// with it: a panic becomes a decode error like any other.
fn guarded<T>(format: Format, run: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
        Err(AudioError::Decode {
            format: format.extension(),
            reason: "the decoder failed on malformed data".into(),
        })
    })
}

struct Spec {
    sample_rate: u32,
    channels: u16,
}

struct Stream<'a> {
    format: Format,
    reader: Box<dyn FormatReader + 'a>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    declared: Option<Spec>,
    num_frames: Option<u64>,
}

fn open(bytes: &[u8], format: Format) -> Result<Stream<'_>> {
    let fail = |reason: String| AudioError::Decode {
        format: format.extension(),
        reason,
    };
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(format.extension());
    let reader = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| fail(format!("unrecognized data ({e})")))?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| fail("no audio track".into()))?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| fail("no audio codec parameters".into()))?;
    let decoder = CODECS
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| fail(format!("unsupported codec ({e})")))?;
    let declared = match (params.sample_rate, &params.channels) {
        (Some(rate), Some(channels)) if rate > 0 && channels.count() > 0 => Some(Spec {
            sample_rate: rate,
            channels: u16::try_from(channels.count()).unwrap_or(u16::MAX),
        }),
        _ => None,
    };
    let (track_id, num_frames) = (track.id, track.num_frames);
    Ok(Stream {
        format,
        reader,
        decoder,
        track_id,
        declared,
        num_frames,
    })
}

/// Packets that fail to decode are skipped (as players do) unless they outnumber the good
/// ones, which means the input was never audio.
const MAX_BAD_PACKET_SHARE: f64 = 0.5;
/// Upper bound on the up-front allocation taken from a header's frame count, which a hostile
/// file could set to anything.
const MAX_PREALLOCATED_SAMPLES: u64 = 1 << 26;

impl Stream<'_> {
    fn expected_samples(&self) -> usize {
        let channels = self.declared.as_ref().map_or(1, |s| u64::from(s.channels));
        let samples = self.num_frames.unwrap_or(0).saturating_mul(channels);
        samples.min(MAX_PREALLOCATED_SAMPLES) as usize
    }

    fn fail(&self, reason: impl Into<String>) -> AudioError {
        AudioError::Decode {
            format: self.format.extension(),
            reason: reason.into(),
        }
    }

    /// Decodes every packet of the track, handing each buffer to `sink`.
    fn run(
        &mut self,
        mut sink: impl FnMut(&symphonia::core::audio::GenericAudioBufferRef<'_>),
    ) -> Result<Spec> {
        let mut spec: Option<Spec> = None;
        let (mut good, mut bad) = (0u64, 0u64);
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                // A cut-off stream or a second chained stream ends what we read.
                Err(SymphoniaError::IoError(_) | SymphoniaError::ResetRequired) => break,
                Err(e) if good > 0 => {
                    tracing::debug!(error = %e, "audio stream ended with a demuxing error");
                    break;
                }
                Err(e) => return Err(self.fail(e.to_string())),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            match self.decoder.decode(&packet) {
                Ok(buf) => {
                    good += 1;
                    if buf.frames() == 0 {
                        continue;
                    }
                    let rate = buf.spec().rate();
                    let channels = buf.spec().channels().count();
                    match &spec {
                        None => {
                            if rate == 0 || channels == 0 || channels > usize::from(u16::MAX) {
                                return Err(self.fail("invalid sample rate or channel count"));
                            }
                            spec = Some(Spec {
                                sample_rate: rate,
                                channels: channels as u16,
                            });
                        }
                        Some(s) if s.sample_rate != rate || usize::from(s.channels) != channels => {
                            return Err(self.fail("the stream changes rate or channels midway"));
                        }
                        Some(_) => {}
                    }
                    sink(&buf);
                }
                Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_)) => bad += 1,
                Err(e) => return Err(self.fail(e.to_string())),
            }
        }
        if bad > 0 && bad as f64 > (good + bad) as f64 * MAX_BAD_PACKET_SHARE {
            return Err(self.fail(format!("{bad} of {} packets are corrupt", good + bad)));
        }
        match spec.or_else(|| self.declared.take()) {
            Some(spec) if good > 0 || bad == 0 => Ok(spec),
            _ => Err(self.fail("no audio frames")),
        }
    }
}

/// Streaming WAV writers (espeak-ng `--stdout`, ffmpeg to a pipe) cannot seek back to fill in
/// the sizes, so they write 0, 0xFFFFFFFF or a huge placeholder. When the data chunk claims
/// more than the buffer holds, rewrite the header so everything after it is the data (cut to
/// whole frames). Honest files are left alone (`None`).
fn repair_streamed_wav(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut block_align = 1usize;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = pos + 8;
        let remaining = bytes.len() - body;
        if id == b"fmt " && size >= 16 && remaining >= 16 {
            block_align = usize::from(u16::from_le_bytes([bytes[body + 12], bytes[body + 13]]));
        }
        if id == b"data" {
            if size != 0 && size != 0xFFFF_FFFF && size <= remaining {
                return None;
            }
            let len = remaining - remaining % block_align.max(1);
            let total = u32::try_from(body + len - 8).ok()?;
            let mut fixed = bytes[..body + len].to_vec();
            fixed[4..8].copy_from_slice(&total.to_le_bytes());
            fixed[pos + 4..pos + 8].copy_from_slice(&(len as u32).to_le_bytes());
            return Some(fixed);
        }
        if size > remaining {
            return None;
        }
        pos = body + size + (size & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{espeak, sine};
    use crate::audio::{encode_mp3, encode_wav, measure};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn a_wav_decodes_to_the_samples_it_was_written_from() {
        let tone = sine(22_050, 1, 440.0, 0.5, 250);
        let wav = encode_wav(&tone).unwrap();
        let back = decode(&wav, Format::Wav).unwrap();
        assert_eq!((back.sample_rate, back.channels), (22_050, 1));
        assert_eq!(back.samples.len(), tone.samples.len());
        let worst = tone
            .samples
            .iter()
            .zip(&back.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1.0 / 32768.0 + 1e-6,
            "16-bit rounding only, got {worst}"
        );
    }

    #[test]
    fn raw_s16le_pcm_decodes_with_the_given_rate() {
        let bytes: Vec<u8> = [0i16, 16384, -16384, i16::MIN]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let format = Format::PcmS16Le {
            sample_rate: 24_000,
            channels: 1,
        };
        let pcm = decode(&bytes, format).unwrap();
        assert_eq!(pcm.sample_rate, 24_000);
        assert_eq!(pcm.samples, vec![0.0, 0.5, -0.5, -1.0]);
        assert!(decode(&bytes[..3], format).is_err(), "half a sample");
    }

    #[test]
    fn a_streamed_wav_with_placeholder_sizes_decodes_to_all_of_its_samples() {
        let tone = sine(22_050, 1, 300.0, 0.3, 400);
        let honest = encode_wav(&tone).unwrap();
        for placeholder in [0u32, 0xFFFF_FFFF, 0x7FFF_F000] {
            let mut streamed = honest.clone();
            streamed[4..8].copy_from_slice(&placeholder.to_le_bytes());
            streamed[40..44].copy_from_slice(&placeholder.to_le_bytes());
            let pcm = decode(&streamed, Format::Wav).unwrap();
            assert_eq!(pcm.frames(), tone.frames(), "placeholder {placeholder:#x}");
            assert_eq!(pcm.duration_ms(), 400);
        }
    }

    #[test]
    fn real_espeak_output_decodes_from_a_file_and_from_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.wav");
        espeak(&[
            "-w",
            path.to_str().unwrap(),
            "hello, this is the local voice",
        ]);
        let from_file = decode(&std::fs::read(&path).unwrap(), Format::Wav).unwrap();
        let stdout = espeak(&["--stdout", "hello, this is the local voice"]);
        assert_ne!(&stdout[40..44], &std::fs::read(&path).unwrap()[40..44]);
        let from_stdout = decode(&stdout, Format::Wav).unwrap();

        assert_eq!((from_file.sample_rate, from_file.channels), (22_050, 1));
        assert!(
            from_file.duration_ms() > 1000,
            "{}",
            from_file.duration_ms()
        );
        assert_eq!(from_stdout, from_file);
        let level = measure(&from_file).unwrap();
        assert!(level.integrated_lufs.unwrap() > -40.0, "{level:?}");
    }

    #[test]
    fn flac_and_ogg_vorbis_decode_with_their_rate_and_length() {
        // Made with `flac` and `oggenc` from one second of a 440 Hz tone at 16 kHz, amplitude 0.5.
        for (name, format) in [("tone.flac", Format::Flac), ("tone.ogg", Format::Ogg)] {
            let pcm = decode(&fixture(name), format).unwrap();
            assert_eq!((pcm.sample_rate, pcm.channels), (16_000, 1), "{name}");
            assert_eq!(pcm.duration_ms(), 1000, "{name}");
            let peak = pcm.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            assert!((peak - 0.5).abs() < 0.05, "{name}: peak {peak}");
        }
    }

    #[test]
    fn probing_gives_the_decoded_duration_for_every_format() {
        let tone = sine(24_000, 1, 440.0, 0.5, 1234);
        let mp3 = encode_mp3(&tone, 64, None).unwrap();
        let cases = [
            (encode_wav(&tone).unwrap(), Format::Wav),
            (mp3, Format::Mp3),
            (fixture("tone.flac"), Format::Flac),
            (fixture("tone.ogg"), Format::Ogg),
        ];
        for (bytes, format) in cases {
            let decoded = decode(&bytes, format).unwrap();
            let probed = probe(&bytes, format).unwrap();
            assert_eq!(probed.duration_ms, decoded.duration_ms(), "{format:?}");
            assert_eq!(probed.sample_rate, decoded.sample_rate, "{format:?}");
            assert_eq!(probed.channels, decoded.channels, "{format:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_for_every_format() {
        let text = b"<html><body>502 Bad Gateway</body></html>".repeat(50);
        let mut noise = vec![0u8; 20_000];
        let mut x = 12345u32;
        for b in &mut noise {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 16) as u8;
        }
        let mut truncated_header = encode_wav(&sine(8000, 1, 440.0, 0.5, 100)).unwrap();
        truncated_header.truncate(30);
        for format in [Format::Mp3, Format::Wav, Format::Flac, Format::Ogg] {
            for bytes in [&text[..], &noise[..], &truncated_header[..], &[][..]] {
                let result = decode(bytes, format);
                assert!(
                    matches!(result, Err(AudioError::Decode { .. })),
                    "{format:?} of {} bytes gave {result:?}",
                    bytes.len()
                );
                assert!(probe(bytes, format).is_err());
            }
        }
    }

    /// One second of a 440 Hz tone at 16 kHz, amplitude 0.5, in each upload format: made here
    /// with the product's encoders, or (AAC, WebM) a fixture made with ffmpeg 5.1:
    /// `ffmpeg -f lavfi -i "aevalsrc=0.5*sin(2*PI*440*t):s=16000:d=1"`
    /// then `-c:a aac -b:a 32k tone.m4a`, `-c:a aac -b:a 32k -f mp4 tone.mp4` and
    /// `-c:a libopus -b:a 24k tone.webm`, and the same written to a pipe (`-f webm -`), whose
    /// sizes are unknown and which has no index, like what browsers record, as
    /// `tone-streamed.webm`.
    fn recordings() -> Vec<(&'static str, Vec<u8>, Format)> {
        let tone = sine(16_000, 1, 440.0, 0.5, 1000);
        vec![
            (
                "flac",
                crate::audio::encode_flac(&tone).unwrap(),
                Format::Flac,
            ),
            ("mp3", encode_mp3(&tone, 64, None).unwrap(), Format::Mp3),
            ("wav", encode_wav(&tone).unwrap(), Format::Wav),
            (
                "ogg (opus)",
                crate::audio::encode_opus(&tone, 32).unwrap(),
                Format::Ogg,
            ),
            ("ogg (vorbis)", fixture("tone.ogg"), Format::Ogg),
            ("m4a", fixture("tone.m4a"), Format::Mp4),
            ("mp4", fixture("tone.mp4"), Format::Mp4),
            ("webm", fixture("tone.webm"), Format::Webm),
            (
                "webm (streamed)",
                fixture("tone-streamed.webm"),
                Format::Webm,
            ),
        ]
    }

    #[test]
    fn every_upload_format_is_recognized_from_its_bytes_and_decodes() {
        for (name, bytes, format) in recordings() {
            assert_eq!(Format::sniff(&bytes), Some(format), "{name}");
            let pcm = decode_recording(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            // MP4 and WebM keep their codec's priming and padding (AAC: 1024 samples of
            // priming and the last frame filled up; Opus: its 6.5 ms pre-skip); the others are
            // exact to the millisecond or one MP3 frame.
            let ms = pcm.duration_ms();
            let most = if matches!(format, Format::Mp4) {
                1130
            } else {
                1075
            };
            assert!((995..=most).contains(&ms), "{name}: {ms} ms");
            // The tone's peak away from its edges (AAC rings at an abrupt start).
            let middle = &pcm.samples[pcm.samples.len() / 4..pcm.samples.len() * 3 / 4];
            let peak = middle.iter().fold(0.0f32, |m, s| m.max(s.abs()));
            assert!((peak - 0.5).abs() < 0.05, "{name}: peak {peak}");
            let level = measure(&pcm).unwrap().integrated_lufs.unwrap();
            assert!((level - -6.0).abs() < 1.0, "{name}: {level} LUFS");
            let asr = for_recognition(pcm).unwrap();
            assert_eq!(
                (asr.sample_rate, asr.channels),
                (RECOGNITION_RATE, 1),
                "{name}"
            );
        }
    }

    #[test]
    fn decoding_for_recognition_as_it_goes_gives_what_converting_the_whole_gives() {
        let voice = crate::audio::testing::speech(44_100, 2500, 0.5, 8);
        let stereo = conform(voice, 44_100, 2).unwrap();
        let mut cases = vec![
            ("flac", crate::audio::encode_flac(&stereo).unwrap()),
            ("mp3", encode_mp3(&stereo, 128, None).unwrap()),
            ("opus", crate::audio::encode_opus(&stereo, 64).unwrap()),
        ];
        cases.extend(
            recordings()
                .into_iter()
                .map(|(name, bytes, _)| (name, bytes)),
        );
        for (name, bytes) in cases {
            let streamed = decode_for_recognition(&bytes).unwrap();
            let whole = for_recognition(decode_recording(&bytes).unwrap()).unwrap();
            assert_eq!(
                (streamed.sample_rate, streamed.channels),
                (RECOGNITION_RATE, 1)
            );
            assert_eq!(streamed.frames(), whole.frames(), "{name}");
            let worst = streamed
                .samples
                .iter()
                .zip(&whole.samples)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{name}: differs by {worst}");
        }
        assert!(matches!(
            decode_for_recognition(b"plain text"),
            Err(AudioError::Unsupported)
        ));
    }

    #[test]
    fn a_file_in_no_supported_format_is_unsupported_and_a_corrupt_one_fails_to_decode() {
        let id3_only = b"ID3\x04\0\0\0\0\0\0".to_vec();
        for bytes in [
            b"just some text, not audio at all".to_vec(),
            b"%PDF-1.7 ...".to_vec(),
            vec![0u8; 4096],
            Vec::new(),
            // ADTS AAC's sync word without an MPEG layer.
            vec![0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC],
        ] {
            let err = decode_recording(&bytes).unwrap_err();
            assert!(matches!(err, AudioError::Unsupported), "{err:?}");
            assert!(
                err.to_string()
                    .contains("flac, m4a, mp3, mp4, mpeg, mpga, ogg, wav, webm"),
                "{err}"
            );
        }
        // The right magic number, then garbage or nothing: a decode error, never a panic.
        // (A WAV header before garbage is noise, which is audio.)
        for (name, bytes, format) in recordings() {
            if format == Format::Wav {
                continue;
            }
            let mut corrupt = bytes[..bytes.len().min(40)].to_vec();
            corrupt.extend(std::iter::repeat_n(0xA5, 3000));
            for broken in [&bytes[..bytes.len().min(12)], &corrupt[..]] {
                let result = decode_recording(broken);
                assert!(
                    matches!(result, Err(AudioError::Decode { .. })),
                    "{name}: {result:?}"
                );
            }
        }
        assert!(matches!(
            decode_recording(&id3_only),
            Err(AudioError::Decode { .. })
        ));
    }

    #[test]
    fn sniffing_goes_by_the_bytes_not_the_name() {
        let tone = sine(16_000, 1, 440.0, 0.5, 200);
        let wav = encode_wav(&tone).unwrap();
        assert_eq!(Format::sniff(&wav), Some(Format::Wav));
        // An MP3 sent as "recording.wav" still decodes as MP3.
        let mp3 = encode_mp3(&tone, 64, None).unwrap();
        assert_eq!(Format::sniff(&mp3), Some(Format::Mp3));
        assert!(decode(&mp3, Format::Wav).is_ok());
        let mut frame_sync = vec![0xFF, 0xFB, 0x90, 0xC4];
        assert_eq!(Format::sniff(&frame_sync), Some(Format::Mp3));
        frame_sync[2] = 0xF0; // bitrate index 15 does not exist
        assert_eq!(Format::sniff(&frame_sync), None);
        assert_eq!(Format::sniff(b"OggS\0\x02"), Some(Format::Ogg));
        assert_eq!(Format::sniff(b"\x1A\x45\xDF\xA3\x01"), Some(Format::Webm));
        assert_eq!(Format::sniff(b"\0\0\0\x20ftypM4A \0\0"), Some(Format::Mp4));
        assert_eq!(Format::sniff(b"fLaC\0\0\0\x22"), Some(Format::Flac));
    }

    #[test]
    fn a_stream_cut_short_yields_the_audio_before_the_cut() {
        let tone = sine(24_000, 1, 440.0, 0.5, 2000);
        let mp3 = encode_mp3(&tone, 64, None).unwrap();
        let half = decode(&mp3[..mp3.len() / 2], Format::Mp3).unwrap();
        assert!(
            (800..=1200).contains(&half.duration_ms()),
            "{}",
            half.duration_ms()
        );
    }
}
