//! Encoding: MP3 with LAME (plus ID3v2 tags, cover and chapter frames) and 16-bit WAV; the
//! other formats and the one `encode` for all of them are in `output.rs`.

use super::{AudioError, Pcm, Result};
use id3::frame::{Chapter as ChapterFrame, Picture, PictureType, TableOfContents};
use id3::{Frame, TagLike, Version};
use mp3lame_encoder::{Bitrate, Builder, FlushGap, InterleavedPcm, Mode, MonoPcm, Quality};
use std::num::NonZeroU32;

/// ID3v2 tags for an encoded MP3. Empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Id3Tags {
    pub title: Option<String>,
    /// The author (TPE1).
    pub artist: Option<String>,
    /// The show, for podcast episodes (TALB).
    pub album: Option<String>,
    pub cover: Option<Cover>,
    pub chapters: Vec<Chapter>,
}

/// Cover art (APIC, front cover).
#[derive(Debug, Clone, PartialEq)]
pub struct Cover {
    /// e.g. `image/jpeg`, `image/png`.
    pub mime: String,
    pub data: Vec<u8>,
}

/// One ID3 chapter (CHAP with a TIT2 title, listed in an ordered top-level CTOC).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chapter {
    pub title: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The sample rates MPEG audio layer III defines (MPEG-1, 2 and 2.5).
const MP3_RATES: [u32; 9] = [
    8000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// Frames handed to LAME per call: bounds the output buffer, avoids per-sample work.
const BLOCK_FRAMES: usize = 16_384;

/// Incremental MP3 encoding, for audio that arrives piece by piece (e.g. a progressive
/// stream). Its output carries no gapless info frame, so decoders add LAME's ~50 ms encoder
/// delay at the start; [`encode_mp3`] writes that frame and decodes to the exact length.
pub struct Mp3Encoder {
    lame: mp3lame_encoder::Encoder,
    channels: u16,
    /// Undoes LAME's preset input scaling (see [`lame_preset_scale`]).
    makeup: f32,
    scratch: Vec<f32>,
}

impl Mp3Encoder {
    /// Constant bitrate; `bitrate_kbps` is one of MP3's rates (8..=320). Mono or stereo.
    pub fn new(sample_rate: u32, channels: u16, bitrate_kbps: u32) -> Result<Self> {
        Self::build(sample_rate, channels, bitrate_kbps, false)
    }

    fn build(sample_rate: u32, channels: u16, bitrate_kbps: u32, info_frame: bool) -> Result<Self> {
        let invalid =
            |what: &str, e: &dyn std::fmt::Debug| AudioError::Invalid(format!("mp3 {what}: {e:?}"));
        let mode = match channels {
            1 => Mode::Mono,
            2 => Mode::JointStereo,
            n => {
                return Err(AudioError::Invalid(format!(
                    "mp3 cannot carry {n} channels"
                )));
            }
        };
        let mut builder =
            Builder::new().ok_or_else(|| AudioError::Encode("LAME could not start".into()))?;
        builder
            .set_num_channels(channels as u8)
            .map_err(|e| invalid("channels", &e))?;
        builder
            .set_sample_rate(sample_rate)
            .map_err(|e| invalid("sample rate", &e))?;
        // Left alone, LAME resamples low bitrates to a lower rate; keep the input's rate when
        // MP3 has it (the others are resampled by LAME to the nearest one).
        if MP3_RATES.contains(&sample_rate) {
            builder
                .set_output_sample_rate(NonZeroU32::new(sample_rate))
                .map_err(|e| invalid("output sample rate", &e))?;
        }
        builder
            .set_brate(bitrate(bitrate_kbps)?)
            .map_err(|e| invalid("bitrate", &e))?;
        builder.set_mode(mode).map_err(|e| invalid("mode", &e))?;
        // LAME's default algorithm quality: near-best for speech at a fraction of the cost.
        builder
            .set_quality(Quality::Good)
            .map_err(|e| invalid("quality", &e))?;
        builder
            .set_to_write_vbr_tag(info_frame)
            .map_err(|e| invalid("info frame", &e))?;
        let lame = builder.build().map_err(|e| {
            invalid(
                &format!("{sample_rate} Hz x{channels} at {bitrate_kbps} kbps"),
                &e,
            )
        })?;
        Ok(Self {
            lame,
            channels,
            makeup: 1.0 / lame_preset_scale(bitrate_kbps),
            scratch: Vec::new(),
        })
    }

    /// Encodes interleaved samples, appending whatever MP3 frames are ready to `out`.
    pub fn encode(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<()> {
        let width = usize::from(self.channels);
        if !samples.len().is_multiple_of(width) {
            return Err(AudioError::Invalid("partial frame".into()));
        }
        for block in samples.chunks(BLOCK_FRAMES * width) {
            self.scratch.clear();
            self.scratch.extend(block.iter().map(|s| s * self.makeup));
            out.reserve(mp3lame_encoder::max_required_buffer_size(
                block.len() / width,
            ));
            let written = if width == 1 {
                self.lame.encode_to_vec(MonoPcm(&self.scratch), out)
            } else {
                self.lame.encode_to_vec(InterleavedPcm(&self.scratch), out)
            };
            written.map_err(|e| AudioError::Encode(format!("{e:?}")))?;
        }
        Ok(())
    }

    /// Flushes the last frames into `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        self.flush(out)
    }

    fn flush(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.reserve(7200);
        self.lame
            .flush_to_vec::<FlushGap>(out)
            .map_err(|e| AudioError::Encode(format!("{e:?}")))?;
        Ok(())
    }
}

/// LAME 3.100's constant-bitrate presets quietly scale the input (0.95 up to 160 kbps, 0.97
/// at 192, 0.98 at 224) as a guard against clipping (`abr_switch_map` in `presets.c`). Audio
/// reaching the encoder here is already true-peak limited, and a file must decode at the level
/// it was mastered to, so the encoder undoes it.
fn lame_preset_scale(kbps: u32) -> f32 {
    match kbps {
        0..=160 => 0.95,
        161..=192 => 0.97,
        193..=224 => 0.98,
        _ => 1.0,
    }
}

fn bitrate(kbps: u32) -> Result<Bitrate> {
    Ok(match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        80 => Bitrate::Kbps80,
        96 => Bitrate::Kbps96,
        112 => Bitrate::Kbps112,
        128 => Bitrate::Kbps128,
        160 => Bitrate::Kbps160,
        192 => Bitrate::Kbps192,
        224 => Bitrate::Kbps224,
        256 => Bitrate::Kbps256,
        320 => Bitrate::Kbps320,
        other => {
            return Err(AudioError::Invalid(format!(
                "{other} kbps is not an MP3 bitrate"
            )));
        }
    })
}

/// Encodes a whole file: optional ID3v2.3 tag, then a LAME info frame carrying the encoder
/// delay and padding (so decoders return exactly the input's length), then the audio at a
/// constant `bitrate_kbps`. ID3v2.3 rather than 2.4 because more podcast apps and players
/// read it.
///
/// The info frame has the size of an audio frame, so LAME leaves it out when it does not fit:
/// below 64 kbps at 32-48 kHz (56 kbps at 16-24 kHz). Such files decode with LAME's ~50 ms
/// start delay and end padding included; the stored `duration_ms` still comes from the PCM.
pub fn encode_mp3(pcm: &Pcm, bitrate_kbps: u32, tags: Option<&Id3Tags>) -> Result<Vec<u8>> {
    let mut out = match tags {
        Some(tags) => id3_tag(tags)?,
        None => Vec::new(),
    };
    let audio_start = out.len();
    // 8 kbps per 1000 bytes per second, plus slack for the headers.
    let estimate = pcm.duration_ms() as usize * bitrate_kbps as usize / 8 + 16_384;
    out.reserve(estimate);
    let mut encoder = Mp3Encoder::build(pcm.sample_rate, pcm.channels, bitrate_kbps, true)?;
    encoder.encode(&pcm.samples, &mut out)?;
    encoder.flush(&mut out)?;

    let mut info = Vec::with_capacity(encoder.lame.lame_tag_size());
    if encoder.lame.lame_tag_encode_to_vec(&mut info).is_some() {
        // LAME left a placeholder frame of exactly this size where the audio starts.
        let placeholder = out
            .get_mut(audio_start..audio_start + info.len())
            .ok_or_else(|| AudioError::Encode("LAME wrote no info frame".into()))?;
        placeholder.copy_from_slice(&info);
    }
    Ok(out)
}

fn id3_tag(tags: &Id3Tags) -> Result<Vec<u8>> {
    let mut tag = id3::Tag::new();
    if let Some(title) = tags.title.as_deref().filter(|t| !t.is_empty()) {
        tag.set_title(title);
    }
    if let Some(artist) = tags.artist.as_deref().filter(|t| !t.is_empty()) {
        tag.set_artist(artist);
    }
    if let Some(album) = tags.album.as_deref().filter(|t| !t.is_empty()) {
        tag.set_album(album);
    }
    if let Some(cover) = &tags.cover {
        tag.add_frame(Picture {
            mime_type: cover.mime.clone(),
            picture_type: PictureType::CoverFront,
            description: String::new(),
            data: cover.data.clone(),
        });
    }
    let ms = |ms: u64| {
        u32::try_from(ms).map_err(|_| AudioError::Invalid(format!("chapter time {ms} ms")))
    };
    let mut elements = Vec::with_capacity(tags.chapters.len());
    for (i, chapter) in tags.chapters.iter().enumerate() {
        if chapter.end_ms < chapter.start_ms {
            return Err(AudioError::Invalid(format!(
                "chapter {i} ends before it starts"
            )));
        }
        let element_id = format!("chp{i}");
        tag.add_frame(ChapterFrame {
            element_id: element_id.clone(),
            start_time: ms(chapter.start_ms)?,
            end_time: ms(chapter.end_ms)?,
            // All ones: "use the times, not byte offsets" (ID3v2 chapter spec).
            start_offset: u32::MAX,
            end_offset: u32::MAX,
            frames: vec![Frame::text("TIT2", chapter.title.clone())],
        });
        elements.push(element_id);
    }
    if !elements.is_empty() {
        tag.add_frame(TableOfContents {
            element_id: "toc".into(),
            top_level: true,
            ordered: true,
            elements,
            frames: Vec::new(),
        });
    }
    let mut bytes = Vec::new();
    tag.write_to(&mut bytes, Version::Id3v23)
        .map_err(|e| AudioError::Encode(format!("ID3 tag: {e}")))?;
    Ok(bytes)
}

/// Samples handed to the WAV writer's buffer at a time.
const WAV_BLOCK: usize = 65_536;

/// 16-bit PCM WAV, samples rounded and clipped to the 16-bit range.
pub fn encode_wav(pcm: &Pcm) -> Result<Vec<u8>> {
    let spec = hound::WavSpec {
        channels: pcm.channels,
        sample_rate: pcm.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| AudioError::Encode(format!("wav: {e}"));
    if pcm.samples.len() * 2 > u32::MAX as usize - 64 {
        return Err(AudioError::Invalid("too long for a WAV file".into()));
    }
    let mut cursor = std::io::Cursor::new(Vec::with_capacity(44 + pcm.samples.len() * 2));
    let mut writer = hound::WavWriter::new(&mut cursor, spec).map_err(fail)?;
    for block in pcm.samples.chunks(WAV_BLOCK) {
        let mut samples = writer.get_i16_writer(block.len() as u32);
        for &s in block {
            samples.write_sample(super::to_i16(s));
        }
        samples.flush().map_err(fail)?;
    }
    writer.finalize().map_err(fail)?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::testing::{sine, speech};
    use crate::audio::{Format, decode, measure};

    #[test]
    fn an_mp3_decodes_to_the_length_it_was_encoded_from() {
        for (rate, channels, ms) in [(24_000, 1, 2345), (22_050, 1, 1000), (44_100, 2, 1500)] {
            let tone = sine(rate, channels, 440.0, 0.5, ms);
            let mp3 = encode_mp3(&tone, 64, None).unwrap();
            let back = decode(&mp3, Format::Mp3).unwrap();
            assert_eq!((back.sample_rate, back.channels), (rate, channels));
            // One MP3 frame (1152 samples; 576 below 32 kHz) is the most the length may differ.
            let frame = if rate < 32_000 { 576 } else { 1152 };
            let diff = back.frames().abs_diff(tone.frames());
            assert!(
                diff <= frame,
                "{rate} Hz: {} vs {}",
                back.frames(),
                tone.frames()
            );
        }
        // Below 64 kbps the info frame does not fit: LAME's delay stays in, but no more.
        let tone = sine(44_100, 1, 440.0, 0.5, 1000);
        let back = decode(&encode_mp3(&tone, 32, None).unwrap(), Format::Mp3).unwrap();
        assert!(back.frames() > tone.frames() && back.frames() - tone.frames() <= 2 * 1152);
    }

    #[test]
    fn an_mp3_keeps_the_level_of_its_input() {
        for (rate, kbps) in [
            (24_000, 48),
            (44_100, 64),
            (44_100, 192),
            (44_100, 224),
            (44_100, 320),
        ] {
            let voice = speech(rate, 3000, 0.4, 7);
            let back = decode(&encode_mp3(&voice, kbps, None).unwrap(), Format::Mp3).unwrap();
            let (a, b) = (measure(&voice).unwrap(), measure(&back).unwrap());
            let (a, b) = (a.integrated_lufs.unwrap(), b.integrated_lufs.unwrap());
            assert!(
                (a - b).abs() < 0.05,
                "{rate} Hz {kbps} kbps: {a} vs {b} LUFS"
            );
        }
    }

    #[test]
    fn id3_title_show_cover_and_chapters_read_back() {
        let tone = sine(24_000, 1, 440.0, 0.3, 3000);
        let tags = Id3Tags {
            title: Some("Épisode 1: 你好 & <friends> 🎙".into()),
            artist: Some("Ada".into()),
            album: Some("The Show".into()),
            cover: Some(Cover {
                mime: "image/png".into(),
                data: vec![0x89, b'P', b'N', b'G', 1, 2, 3],
            }),
            chapters: vec![
                Chapter {
                    title: "Intro".into(),
                    start_ms: 0,
                    end_ms: 1200,
                },
                Chapter {
                    title: "第二章".into(),
                    start_ms: 1200,
                    end_ms: 3000,
                },
            ],
        };
        let mp3 = encode_mp3(&tone, 64, Some(&tags)).unwrap();

        let tag = id3::Tag::read_from2(std::io::Cursor::new(&mp3)).unwrap();
        assert_eq!(tag.version(), Version::Id3v23);
        assert_eq!(tag.title(), Some("Épisode 1: 你好 & <friends> 🎙"));
        assert_eq!(tag.artist(), Some("Ada"));
        assert_eq!(tag.album(), Some("The Show"));
        let cover = tag.pictures().next().unwrap();
        assert_eq!(cover.mime_type, "image/png");
        assert_eq!(cover.data, vec![0x89, b'P', b'N', b'G', 1, 2, 3]);
        let chapters: Vec<_> = tag
            .chapters()
            .map(|c| {
                let title = c.frames[0].content().text().unwrap().to_string();
                (c.element_id.clone(), title, c.start_time, c.end_time)
            })
            .collect();
        assert_eq!(
            chapters,
            vec![
                ("chp0".into(), "Intro".into(), 0, 1200),
                ("chp1".into(), "第二章".into(), 1200, 3000),
            ]
        );
        let toc = tag.tables_of_contents().next().unwrap();
        assert!(toc.top_level && toc.ordered);
        assert_eq!(toc.elements, vec!["chp0", "chp1"]);

        // The tag does not disturb the audio.
        let back = decode(&mp3, Format::Mp3).unwrap();
        assert!(
            back.frames().abs_diff(tone.frames()) <= 576,
            "{} {} {}",
            back.frames(),
            tone.frames(),
            back.sample_rate
        );
    }

    #[test]
    fn unsupported_bitrates_and_channel_counts_are_refused() {
        let tone = sine(24_000, 1, 440.0, 0.3, 100);
        assert!(matches!(
            encode_mp3(&tone, 100, None),
            Err(AudioError::Invalid(_))
        ));
        let surround = Pcm::new(48_000, 6, vec![0.0; 600]).unwrap();
        assert!(encode_mp3(&surround, 128, None).is_err());
    }

    #[test]
    fn streaming_encoder_output_decodes_as_one_continuous_file() {
        let tone = sine(24_000, 1, 440.0, 0.3, 3000);
        let mut encoder = Mp3Encoder::new(24_000, 1, 64).unwrap();
        let mut out = Vec::new();
        for piece in tone.samples.chunks(10_000) {
            encoder.encode(piece, &mut out).unwrap();
        }
        encoder.finish(&mut out).unwrap();
        let back = decode(&out, Format::Mp3).unwrap();
        // Without the info frame the encoder delay and padding stay in: under 3 frames.
        assert!(back.frames() >= tone.frames());
        assert!(back.frames() - tone.frames() < 3 * 576, "{}", back.frames());
    }

    #[test]
    fn wav_output_is_a_standard_16_bit_file() {
        let tone = sine(22_050, 2, 440.0, 1.2, 500);
        let wav = encode_wav(&tone).unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 22_050, 16)
        );
        assert_eq!(reader.duration() as usize, tone.frames());
        // Over-range input clips instead of wrapping around.
        let samples: Vec<i16> = reader.into_samples().map(|s| s.unwrap()).collect();
        assert!(samples.contains(&i16::MAX) && samples.contains(&i16::MIN));
    }
}
