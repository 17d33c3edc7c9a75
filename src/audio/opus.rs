//! Opus through libopus: Ogg Opus output (RFC 7845), whole or as it is made, and the Opus
//! decoder symphonia lacks, so its Ogg and WebM demuxers read Opus recordings.

use super::resample::StreamResampler;
use super::{AudioError, Pcm, Result};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opusic_c::{Application, Bitrate, Channels, SampleRate};
use std::sync::Mutex;
use symphonia::core::audio::{
    AsGenericAudioBufferRef, AudioBuffer, AudioMut, AudioSpec, Channels as SymphoniaChannels,
    GenericAudioBufferRef,
};
use symphonia::core::codecs::CodecInfo;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{
    AudioCodecParameters, AudioDecoder, AudioDecoderOptions, FinalizeResult,
};
use symphonia::core::codecs::registry::{RegisterableAudioDecoder, SupportedAudioCodec};
use symphonia::core::errors::{Error as SymphoniaError, Result as SymphoniaResult};
use symphonia::core::packet::PacketRef;

/// Opus always decodes, and counts granule positions, at 48 kHz.
const OPUS_RATE: u32 = 48_000;
/// 20 ms frames: the usual choice for speech and music alike.
const FRAME_MS: u32 = 20;
/// The largest packet libopus writes for one frame is 1275 bytes.
const MAX_PACKET: usize = 1500;
/// The longest Opus packet lasts 120 ms.
const MAX_PACKET_FRAMES: usize = 48 * 120;
/// Any fixed serial is valid for a file holding one logical stream.
const SERIAL: u32 = 0x616d_6b31;

/// The input rates libopus takes; others are resampled to 48 kHz first.
fn opus_rate(sample_rate: u32) -> Option<SampleRate> {
    Some(match sample_rate {
        8000 => SampleRate::Hz8000,
        12_000 => SampleRate::Hz12000,
        16_000 => SampleRate::Hz16000,
        24_000 => SampleRate::Hz24000,
        48_000 => SampleRate::Hz48000,
        _ => return None,
    })
}

fn opus_channels(channels: u16) -> Result<Channels> {
    match channels {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(AudioError::Invalid(format!(
            "opus output cannot carry {n} channels"
        ))),
    }
}

fn libopus(what: &str) -> impl Fn(opusic_c::ErrorCode) -> AudioError + '_ {
    move |e| AudioError::Encode(format!("opus {what}: {e:?}"))
}

/// Incremental Ogg Opus encoding: push samples, take the bytes made so far, finish. Every
/// [`push`](Self::push) that completes a frame ends an Ogg page, so the bytes can be sent as
/// they come; the file [`finish`](Self::finish) completes decodes to exactly the samples pushed.
pub struct OpusEncoder {
    encoder: opusic_c::Encoder,
    /// To 48 kHz, for input at a rate libopus does not take.
    resampler: Option<StreamResampler>,
    channels: usize,
    /// Frames per packet at the encoder's rate.
    frame: usize,
    /// 48 kHz samples per encoder-rate sample.
    scale: u64,
    /// Encoder delay in 48 kHz samples, which decoders skip (OpusHead pre-skip).
    pre_skip: u64,
    /// Samples not yet making a whole frame, interleaved.
    pending: Vec<f32>,
    /// Input frames at the encoder's rate, i.e. what the file must decode to.
    input_frames: u64,
    /// Frames handed to libopus so far, padding included.
    encoded_frames: u64,
    writer: PacketWriter<'static, Vec<u8>>,
    packet: Vec<u8>,
    resampled: Vec<f32>,
}

impl OpusEncoder {
    /// Mono or stereo at any rate; `bitrate_kbps` from 6 to 510 (32 suits speech, 64 music).
    pub fn new(sample_rate: u32, channels: u16, bitrate_kbps: u32) -> Result<Self> {
        if !(6..=510).contains(&bitrate_kbps) {
            return Err(AudioError::Invalid(format!(
                "{bitrate_kbps} kbps is not an Opus bitrate (6 to 510)"
            )));
        }
        let layout = opus_channels(channels)?;
        if sample_rate == 0 {
            return Err(AudioError::Invalid("sample rate 0".into()));
        }
        let (rate, resampler) = match opus_rate(sample_rate) {
            Some(rate) => (rate, None),
            None => (
                SampleRate::Hz48000,
                Some(StreamResampler::new(sample_rate, OPUS_RATE, channels)?),
            ),
        };
        let encoder_rate = rate as i32 as u32;
        let mut encoder =
            opusic_c::Encoder::new(layout, rate, Application::Audio).map_err(libopus("encoder"))?;
        encoder
            .set_bitrate(Bitrate::Value(bitrate_kbps * 1000))
            .map_err(libopus("bitrate"))?;
        let scale = u64::from(OPUS_RATE / encoder_rate);
        let pre_skip = u64::from(encoder.get_look_ahead().map_err(libopus("lookahead"))?) * scale;
        let mut this = Self {
            encoder,
            resampler,
            channels: usize::from(channels),
            frame: (encoder_rate * FRAME_MS / 1000) as usize,
            scale,
            pre_skip,
            pending: Vec::new(),
            input_frames: 0,
            encoded_frames: 0,
            writer: PacketWriter::new(Vec::new()),
            packet: vec![0; MAX_PACKET],
            resampled: Vec::new(),
        };
        this.write_headers(sample_rate, channels)?;
        Ok(this)
    }

    /// OpusHead and OpusTags, each ending its own page (RFC 7845 §5).
    fn write_headers(&mut self, input_rate: u32, channels: u16) -> Result<()> {
        let pre_skip = u16::try_from(self.pre_skip)
            .map_err(|_| AudioError::Encode("opus pre-skip out of range".into()))?;
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(channels as u8);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&input_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family 0: mono or stereo
        let vendor = opusic_c::version().as_bytes();
        let mut tags = Vec::with_capacity(16 + vendor.len());
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
        for packet in [head, tags] {
            self.writer
                .write_packet(packet, SERIAL, PacketWriteEndInfo::EndPage, 0)
                .map_err(|e| AudioError::Encode(format!("ogg: {e}")))?;
        }
        Ok(())
    }

    /// Encodes interleaved samples, appending whatever Ogg pages are complete to `out`.
    pub fn encode(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<()> {
        if !samples.len().is_multiple_of(self.channels) {
            return Err(AudioError::Invalid("partial frame".into()));
        }
        match self.resampler.as_mut() {
            Some(resampler) => {
                let mut resampled = std::mem::take(&mut self.resampled);
                resampled.clear();
                resampler.process(samples, &mut resampled)?;
                self.queue(&resampled)?;
                self.resampled = resampled;
            }
            None => self.queue(samples)?,
        }
        self.drain(out);
        Ok(())
    }

    /// Encodes what is left (padding the last frame with silence) and ends the stream, whose
    /// last granule position trims the padding off again.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        if let Some(resampler) = self.resampler.take() {
            let mut tail = Vec::new();
            resampler.finish(&mut tail)?;
            self.queue(&tail)?;
        }
        let end = self.pre_skip + self.input_frames * self.scale;
        // Decoders lag by the pre-skip: frames past the input carry its last samples.
        let needed = end.div_ceil(self.scale);
        let mut last = None;
        while self.encoded_frames < needed || !self.pending.is_empty() {
            if let Some(packet) = last.take() {
                self.write(packet, PacketWriteEndInfo::NormalPacket)?;
            }
            self.pending.resize(self.frame * self.channels, 0.0);
            last = Some(self.encode_pending()?);
        }
        let packet = match last {
            Some(packet) => packet,
            // Every frame is on a page already: a silent frame carries the end of the stream,
            // and the end granule trims it off.
            None => {
                self.pending.resize(self.frame * self.channels, 0.0);
                self.encode_pending()?
            }
        };
        self.writer
            .write_packet(packet, SERIAL, PacketWriteEndInfo::EndStream, end)
            .map_err(|e| AudioError::Encode(format!("ogg: {e}")))?;
        self.drain(out);
        Ok(())
    }

    /// Adds samples (at the encoder's rate) and encodes every whole frame but keeps the
    /// page open until the end of the call.
    fn queue(&mut self, samples: &[f32]) -> Result<()> {
        self.input_frames += (samples.len() / self.channels) as u64;
        let frame_len = self.frame * self.channels;
        let mut rest = samples;
        let mut done = None;
        while self.pending.len() + rest.len() >= frame_len {
            let take = frame_len - self.pending.len();
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if let Some(packet) = done.take() {
                self.write(packet, PacketWriteEndInfo::NormalPacket)?;
            }
            done = Some(self.encode_pending()?);
        }
        self.pending.extend_from_slice(rest);
        if let Some(packet) = done {
            self.write(packet, PacketWriteEndInfo::EndPage)?;
        }
        Ok(())
    }

    fn encode_pending(&mut self) -> Result<Vec<u8>> {
        let len = self
            .encoder
            .encode_float_to_slice(&self.pending, &mut self.packet)
            .map_err(libopus("encode"))?;
        self.pending.clear();
        self.encoded_frames += self.frame as u64;
        Ok(self.packet[..len].to_vec())
    }

    /// Writes a packet with the granule position of everything encoded so far, never past
    /// the end of the input (padding frames may share a page the writer flushes early).
    fn write(&mut self, packet: Vec<u8>, end: PacketWriteEndInfo) -> Result<()> {
        let granule =
            (self.encoded_frames * self.scale).min(self.pre_skip + self.input_frames * self.scale);
        self.writer
            .write_packet(packet, SERIAL, end, granule)
            .map_err(|e| AudioError::Encode(format!("ogg: {e}")))
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        out.append(self.writer.inner_mut());
    }
}

/// A whole Ogg Opus file.
pub fn encode_opus(pcm: &Pcm, bitrate_kbps: u32) -> Result<Vec<u8>> {
    let mut encoder = OpusEncoder::new(pcm.sample_rate, pcm.channels, bitrate_kbps)?;
    // About the bitrate plus Ogg's page overhead.
    let mut out = Vec::with_capacity(pcm.duration_ms() as usize * bitrate_kbps as usize / 7 + 4096);
    encoder.encode(&pcm.samples, &mut out)?;
    encoder.finish(&mut out)?;
    Ok(out)
}

/// libopus behind symphonia's decoder interface, registered beside symphonia's own codecs
/// (see `decode.rs`). Pre-skip and end trimming come from the demuxer (Ogg); where the
/// demuxer does not trim (WebM), the OpusHead pre-skip is dropped here.
pub(super) struct OpusDecoder {
    params: AudioCodecParameters,
    /// libopus' decoder is `Send` only; the mutex is never locked (`get_mut`), it only makes
    /// the decoder `Sync` as symphonia asks.
    decoder: Mutex<opusic_c::Decoder>,
    channels: usize,
    /// Pre-skip samples still to drop.
    skip: usize,
    pre_skip: usize,
    scratch: Vec<f32>,
    buf: AudioBuffer<f32>,
    gapless: bool,
}

impl OpusDecoder {
    fn try_new(
        params: &AudioCodecParameters,
        options: &AudioDecoderOptions,
    ) -> SymphoniaResult<Self> {
        let head = params.extra_data.as_deref().unwrap_or_default();
        // OpusHead: magic, version, channels, pre-skip (RFC 7845 §5.1); WebM stores it as the
        // codec's private data, Ogg as the first packet.
        let (channels, pre_skip) = if head.len() >= 19 && head.starts_with(b"OpusHead") {
            (
                usize::from(head[9]),
                usize::from(u16::from_le_bytes([head[10], head[11]])),
            )
        } else {
            let channels = params.channels.as_ref().map_or(0, |c| c.count());
            (channels, 0)
        };
        if head.len() >= 19 && head[18] != 0 {
            return Err(SymphoniaError::Unsupported(
                "opus: only mono and stereo streams are supported",
            ));
        }
        let layout = match channels {
            1 => Channels::Mono,
            2 => Channels::Stereo,
            _ => {
                return Err(SymphoniaError::Unsupported(
                    "opus: only mono and stereo streams are supported",
                ));
            }
        };
        let decoder = opusic_c::Decoder::new(layout, SampleRate::Hz48000)
            .map_err(|_| SymphoniaError::Unsupported("opus: the decoder could not start"))?;
        let spec = AudioSpec::new(OPUS_RATE, SymphoniaChannels::Discrete(channels as u16));
        Ok(Self {
            params: params.clone(),
            decoder: Mutex::new(decoder),
            channels,
            skip: pre_skip,
            pre_skip,
            scratch: vec![0.0; MAX_PACKET_FRAMES * channels],
            buf: AudioBuffer::new(spec, MAX_PACKET_FRAMES),
            gapless: options.gapless,
        })
    }

    fn decode_inner(&mut self, packet: &PacketRef<'_>) -> SymphoniaResult<()> {
        self.buf.clear();
        // libopus takes an empty packet for a lost one and conceals 120 ms of it.
        if packet.data.is_empty() {
            return Err(SymphoniaError::DecodeError("opus: empty packet"));
        }
        let decoder = self
            .decoder
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let frames = decoder
            .decode_float_to_slice(packet.data, &mut self.scratch, false)
            .map_err(|_| SymphoniaError::DecodeError("opus: invalid packet"))?;
        self.buf.render_uninit(Some(frames));
        for ch in 0..self.channels {
            let plane = self
                .buf
                .plane_mut(ch)
                .ok_or(SymphoniaError::DecodeError("opus: missing audio plane"))?;
            for (i, sample) in plane[..frames].iter_mut().enumerate() {
                *sample = self.scratch[i * self.channels + ch];
            }
        }
        if self.gapless {
            let trim_start = packet.trim_start.get() as usize;
            // Trims the demuxer gives count against the pre-skip; the rest is dropped here.
            let start = trim_start.max(self.skip.min(frames));
            self.skip = self.skip.saturating_sub(start);
            self.buf.trim(start, packet.trim_end.get() as usize);
        }
        Ok(())
    }
}

impl AudioDecoder for OpusDecoder {
    fn reset(&mut self) {
        let decoder = self
            .decoder
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = decoder.reset();
        self.skip = self.pre_skip;
    }

    fn codec_info(&self) -> &CodecInfo {
        &Self::supported_codecs()[0].info
    }

    fn codec_params(&self) -> &AudioCodecParameters {
        &self.params
    }

    fn decode_ref(&mut self, packet: &PacketRef<'_>) -> SymphoniaResult<GenericAudioBufferRef<'_>> {
        match self.decode_inner(packet) {
            Ok(()) => Ok(self.buf.as_generic_audio_buffer_ref()),
            Err(e) => {
                self.buf.clear();
                Err(e)
            }
        }
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> GenericAudioBufferRef<'_> {
        self.buf.as_generic_audio_buffer_ref()
    }
}

impl RegisterableAudioDecoder for OpusDecoder {
    fn try_registry_new(
        params: &AudioCodecParameters,
        options: &AudioDecoderOptions,
    ) -> SymphoniaResult<Box<dyn AudioDecoder>> {
        Ok(Box::new(Self::try_new(params, options)?))
    }

    fn supported_codecs() -> &'static [SupportedAudioCodec] {
        &[SupportedAudioCodec {
            id: CODEC_ID_OPUS,
            info: CodecInfo {
                short_name: "opus",
                long_name: "Opus (libopus)",
                profiles: &[],
            },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{sine, speech};
    use crate::audio::{Format, conform, decode, measure, resample};
    use ogg::reading::PacketReader;

    /// Pearson correlation of two equally long signals.
    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len().min(b.len()) as f64;
        let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let (ma, mb) = (mean(a), mean(b));
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa * bb).sqrt()
    }

    /// Every packet of an Ogg stream with its page's granule position and flags, read with the
    /// `ogg` crate (independent of symphonia's demuxer).
    fn packets(bytes: &[u8]) -> Vec<ogg::Packet> {
        let mut reader = PacketReader::new(std::io::Cursor::new(bytes));
        let mut packets = Vec::new();
        while let Some(packet) = reader.read_packet().unwrap() {
            packets.push(packet);
        }
        packets
    }

    #[test]
    fn an_ogg_opus_file_decodes_to_the_length_and_the_sound_it_was_made_from() {
        for (rate, channels) in [
            (24_000, 1),
            (22_050, 1),
            (48_000, 2),
            (16_000, 1),
            (44_100, 2),
        ] {
            let voice = conform(speech(rate, 3210, 0.5, 5), rate, channels).unwrap();
            let ogg = encode_opus(&voice, 32).unwrap();
            assert!(Format::Ogg.looks_like(&ogg));
            let back = decode(&ogg, Format::Ogg).unwrap();
            assert_eq!((back.sample_rate, back.channels), (48_000, channels));
            // Pre-skip and end trimming give exactly the input's length at 48 kHz.
            let expected = (voice.frames() as u64 * 48_000).div_ceil(u64::from(rate));
            assert_eq!(back.frames() as u64, expected, "{rate} Hz x{channels}");
            // Same waveform, in time (no encoder delay left), at the same level.
            let back = resample(back, rate).unwrap();
            let r = correlation(&voice.samples, &back.samples);
            assert!(r > 0.9, "{rate} Hz x{channels}: correlation {r}");
            let (a, b) = (measure(&voice).unwrap(), measure(&back).unwrap());
            let (a, b) = (a.integrated_lufs.unwrap(), b.integrated_lufs.unwrap());
            assert!(
                (a - b).abs() < 0.5,
                "{rate} Hz x{channels}: {a} vs {b} LUFS"
            );
        }
    }

    #[test]
    fn the_ogg_stream_follows_rfc_7845() {
        let tone = sine(24_000, 1, 440.0, 0.5, 1000);
        let ogg = encode_opus(&tone, 32).unwrap();
        let packets = packets(&ogg);
        // OpusHead alone on the first page, OpusTags ending the second.
        let head = &packets[0].data;
        assert!(head.starts_with(b"OpusHead") && head.len() == 19);
        assert_eq!(head[8], 1, "version");
        assert_eq!(head[9], 1, "channels");
        let pre_skip = u64::from(u16::from_le_bytes([head[10], head[11]]));
        assert!(pre_skip > 0, "libopus has a look-ahead");
        assert_eq!(u32::from_le_bytes(head[12..16].try_into().unwrap()), 24_000);
        assert_eq!(head[18], 0, "mapping family");
        assert!(packets[0].first_in_stream() && packets[0].last_in_page());
        assert_eq!(packets[0].absgp_page(), 0);
        assert!(packets[1].data.starts_with(b"OpusTags") && packets[1].last_in_page());
        assert_eq!(packets[1].absgp_page(), 0);
        // Audio: granule positions at 48 kHz never go back, and the last page ends the stream
        // at the pre-skip plus exactly the input's length.
        let audio = &packets[2..];
        let mut granule = 0;
        for packet in audio {
            assert!(packet.absgp_page() >= granule);
            granule = packet.absgp_page();
        }
        let last = audio.last().unwrap();
        assert!(last.last_in_stream());
        assert_eq!(last.absgp_page(), pre_skip + 48_000);
        // libopus' own decoder, fed the packets, gives at least that many samples.
        let mut decoder = opusic_c::Decoder::new(Channels::Mono, SampleRate::Hz48000).unwrap();
        let mut out = vec![0.0f32; MAX_PACKET_FRAMES];
        let decoded: usize = audio
            .iter()
            .map(|p| {
                decoder
                    .decode_float_to_slice(&p.data, &mut out, false)
                    .unwrap()
            })
            .sum();
        assert!(decoded as u64 >= pre_skip + 48_000, "{decoded}");
        assert!((decoded as u64) < pre_skip + 48_000 + 2 * 960, "{decoded}");
    }

    #[test]
    fn streamed_opus_comes_out_page_by_page_and_decodes_as_one_file() {
        let voice = speech(22_050, 2500, 0.5, 2);
        let mut encoder = OpusEncoder::new(22_050, 1, 32).unwrap();
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for piece in voice.samples.chunks(2205) {
            encoder.encode(piece, &mut out).unwrap();
            sizes.push(out.len());
        }
        encoder.finish(&mut out).unwrap();
        // Bytes arrive while the audio is pushed, not only at the end.
        assert!(
            sizes[2] > sizes[0] && sizes[sizes.len() - 1] > sizes[2],
            "{sizes:?}"
        );
        let streamed = decode(&out, Format::Ogg).unwrap();
        let whole = decode(&encode_opus(&voice, 32).unwrap(), Format::Ogg).unwrap();
        assert_eq!(streamed.frames(), whole.frames());
        assert_eq!(
            streamed.frames() as u64,
            (voice.frames() as u64 * 48_000).div_ceil(22_050)
        );
        let r = correlation(&streamed.samples, &whole.samples);
        assert!(r > 0.99, "correlation {r}");
    }

    #[test]
    fn an_empty_input_makes_a_valid_empty_file_and_bad_settings_are_refused() {
        let mut out = Vec::new();
        OpusEncoder::new(48_000, 1, 32)
            .unwrap()
            .finish(&mut out)
            .unwrap();
        let packets = packets(&out);
        assert!(packets.last().unwrap().last_in_stream());
        let pre_skip = u16::from_le_bytes([packets[0].data[10], packets[0].data[11]]);
        assert_eq!(packets.last().unwrap().absgp_page(), u64::from(pre_skip));
        assert!(matches!(
            OpusEncoder::new(48_000, 3, 32),
            Err(AudioError::Invalid(_))
        ));
        assert!(matches!(
            OpusEncoder::new(48_000, 1, 1000),
            Err(AudioError::Invalid(_))
        ));
        assert!(matches!(
            OpusEncoder::new(0, 1, 32),
            Err(AudioError::Invalid(_))
        ));
    }
}
