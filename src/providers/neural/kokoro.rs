//! Kokoro-82M v1.0 (int8 ONNX export) as the `kokoro` provider: 54 voices in nine languages,
//! 24 kHz, speaking from phonemes (see `phonemes.rs`, and `zh.rs` for Mandarin).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use ort::session::Session;
use ort::value::Tensor;

use super::engine::Holder;
use super::phonemes::{self, Espeak, KOKORO_MAX_TOKENS, KokoroAccent};
use super::runtime::Runtime;
use super::{Prepared, build_session, model_error, pcm_from_f32, prepare_text};
use crate::audio::Format;
use crate::models::Layout;
use crate::providers::{
    ErrorKind, Gender, ProviderError, ProviderStatus, Quality, SynthesisRequest, Synthesized,
    TextLimit, Tts, Voice,
};

const ID: &str = "kokoro";
pub const SAMPLE_RATE: u32 = 24_000;
/// A voice file: one 256-float style vector per input length, for lengths 0..510.
const STYLE_ROWS: usize = 510;
const STYLE_DIM: usize = 256;
pub const LICENSE: &str = "Apache-2.0";

/// The voice used when a user has not chosen one, per language.
pub const DEFAULT_VOICES: &[(&str, &str)] = &[
    ("en", "af_heart"),
    ("en-GB", "bf_emma"),
    ("zh", "zf_xiaoxiao"),
];

/// What a voice name's first letter says about its language: (BCP-47, espeak-ng voice).
fn language(voice: &str) -> Option<(&'static str, &'static str)> {
    Some(match voice.as_bytes().first()? {
        b'a' => ("en-US", "en-us"),
        b'b' => ("en-GB", "en-gb"),
        b'e' => ("es", "es"),
        b'f' => ("fr-FR", "fr-fr"),
        b'h' => ("hi", "hi"),
        b'i' => ("it", "it"),
        b'j' => ("ja", "ja"),
        b'p' => ("pt-BR", "pt-br"),
        b'z' => ("zh-CN", "cmn"),
        _ => return None,
    })
}

fn voice_info(name: &str) -> Option<Voice> {
    let (lang, _) = language(name)?;
    let gender = match name.as_bytes().get(1) {
        Some(b'f') => Some(Gender::Female),
        Some(b'm') => Some(Gender::Male),
        _ => None,
    };
    let given = name.split_once('_').map_or(name, |(_, n)| n);
    let mut display: String = given.replace('_', " ");
    if let Some(first) = display.get(..1) {
        display = first.to_uppercase() + &display[1..];
    }
    Some(
        Voice::new(ID, name, display, lang, gender)
            .with_quality(Quality::High)
            .with_license(LICENSE, true),
    )
}

struct Engine {
    session: Session,
    input: String,
    output: String,
    styles: HashMap<String, Arc<Vec<f32>>>,
}

pub struct Kokoro {
    runtime: Runtime,
    layout: Layout,
    espeak: Espeak,
    threads: usize,
    holder: Holder<Engine>,
}

impl Kokoro {
    pub fn new(
        runtime: Runtime,
        layout: Layout,
        espeak: Espeak,
        threads: usize,
        idle_unload_s: u64,
    ) -> Self {
        Self {
            runtime,
            layout,
            espeak,
            threads,
            holder: Holder::new("kokoro", idle_unload_s),
        }
    }

    fn installed(&self) -> bool {
        self.layout.kokoro_model().is_file()
    }

    fn not_installed() -> ProviderError {
        ProviderError::new(
            ID,
            ErrorKind::Unavailable,
            "The Kokoro model is not installed: run `aimake models pull kokoro`",
        )
    }

    pub fn is_loaded(&self) -> bool {
        self.holder.is_loaded()
    }

    /// Phoneme pieces for one request, each within Kokoro's input limit.
    async fn phonemes(&self, text: &str, voice: &str) -> Result<Vec<String>, ProviderError> {
        let (lang, espeak_voice) = language(voice).ok_or_else(|| unknown(voice))?;
        let accent = match lang {
            "en-US" => KokoroAccent::American,
            "en-GB" => KokoroAccent::British,
            _ => KokoroAccent::Other,
        };
        let prepared = prepare_text(text, lang);
        let mut all = String::new();
        for part in prepared {
            let phonemes = match part {
                Prepared::Mandarin(han) => super::zh::to_kokoro_phonemes(&han),
                Prepared::Espeak {
                    text,
                    latin_in_chinese,
                } => {
                    let (v, a) = if latin_in_chinese {
                        ("en-us", KokoroAccent::American)
                    } else {
                        (espeak_voice, accent)
                    };
                    let clauses = phonemes::clauses(&text);
                    let ipa = self.espeak.ipa(v, &clauses, true).await?;
                    let mapped: Vec<String> = ipa
                        .iter()
                        .map(|p| phonemes::kokoro_from_espeak(p, a))
                        .collect();
                    phonemes::join_clauses(&clauses, &mapped)
                }
            };
            if phonemes.trim().is_empty() {
                continue;
            }
            if !all.is_empty() {
                all.push(' ');
            }
            all.push_str(phonemes.trim());
        }
        Ok(phonemes::split_phonemes(&all, KOKORO_MAX_TOKENS))
    }
}

fn unknown(voice: &str) -> ProviderError {
    ProviderError::new(
        ID,
        ErrorKind::UnknownVoice,
        format!("Kokoro has no voice named `{voice}`"),
    )
}

fn load(runtime: Runtime, model: PathBuf, threads: usize) -> Result<Engine, ProviderError> {
    let env = runtime
        .environment()
        .map_err(|e| ProviderError::new(ID, ErrorKind::Unavailable, e.to_string()))?;
    let session = build_session(&env, &model, threads).map_err(|e| model_error(ID, &model, e))?;
    let input = ["tokens", "input_ids"]
        .into_iter()
        .find(|n| session.inputs().iter().any(|i| i.name() == *n))
        .ok_or_else(|| {
            model_error(
                ID,
                &model,
                "it has no `tokens` or `input_ids` input: it is not a Kokoro model".into(),
            )
        })?
        .to_string();
    for needed in ["style", "speed"] {
        if !session.inputs().iter().any(|i| i.name() == needed) {
            return Err(model_error(
                ID,
                &model,
                format!("it has no `{needed}` input: it is not a Kokoro model"),
            ));
        }
    }
    // The int8 export calls its output `audio`, the float one `waveform`: take the first.
    let output = session
        .outputs()
        .first()
        .map(|o| o.name().to_string())
        .ok_or_else(|| model_error(ID, &model, "it has no output".into()))?;
    Ok(Engine {
        session,
        input,
        output,
        styles: HashMap::new(),
    })
}

fn style_table(path: &std::path::Path, voice: &str) -> Result<Vec<f32>, ProviderError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ProviderError::new(
            ID,
            ErrorKind::UnknownVoice,
            format!(
                "Kokoro's voice `{voice}` cannot be read ({e}): run `aimake models pull kokoro`"
            ),
        )
    })?;
    if bytes.len() != STYLE_ROWS * STYLE_DIM * 4 {
        return Err(ProviderError::new(
            ID,
            ErrorKind::Failed,
            format!(
                "Kokoro's voice file for `{voice}` has {} bytes where a v1.0 voice has {}: \
                 run `aimake models pull kokoro` to replace it",
                bytes.len(),
                STYLE_ROWS * STYLE_DIM * 4
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl Engine {
    fn speak(
        &mut self,
        voice: &str,
        voice_file: &std::path::Path,
        pieces: &[String],
        speed: f32,
    ) -> Result<Vec<f32>, ProviderError> {
        let style = match self.styles.get(voice) {
            Some(s) => s.clone(),
            None => {
                let table = Arc::new(style_table(voice_file, voice)?);
                self.styles.insert(voice.to_string(), table.clone());
                table
            }
        };
        let mut samples = Vec::new();
        for piece in pieces {
            let tokens = phonemes::kokoro_tokens(piece);
            if tokens.is_empty() {
                continue;
            }
            let row = tokens.len().min(STYLE_ROWS - 1);
            let style_row = style[row * STYLE_DIM..(row + 1) * STYLE_DIM].to_vec();
            let mut ids = Vec::with_capacity(tokens.len() + 2);
            ids.push(0);
            ids.extend(tokens);
            ids.push(0);
            let failed = |e: ort::Error| {
                ProviderError::new(
                    ID,
                    ErrorKind::Failed,
                    format!("Kokoro inference failed: {e}"),
                )
            };
            let outputs = self
                .session
                .run(ort::inputs![
                    self.input.as_str() => Tensor::from_array(([1usize, ids.len()], ids)).map_err(failed)?,
                    "style" => Tensor::from_array(([1usize, STYLE_DIM], style_row)).map_err(failed)?,
                    "speed" => Tensor::from_array(([1usize], vec![speed])).map_err(failed)?,
                ])
                .map_err(failed)?;
            let (_, audio) = outputs[self.output.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(failed)?;
            samples.extend_from_slice(audio);
        }
        Ok(samples)
    }
}

#[async_trait]
impl Tts for Kokoro {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        "kokoro-v1.0-int8"
    }

    async fn status(&self) -> ProviderStatus {
        let runtime = self.runtime.status();
        match (runtime, self.installed()) {
            (Err(e), _) => ProviderStatus {
                available: false,
                detail: e.to_string(),
            },
            (Ok(_), false) => ProviderStatus {
                available: false,
                detail: Self::not_installed().message,
            },
            (Ok(rt), true) => ProviderStatus {
                available: true,
                detail: format!("Kokoro-82M v1.0 (int8) on {rt}"),
            },
        }
    }

    fn ready(&self) -> bool {
        self.installed() && self.runtime.status().is_ok()
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        if !self.installed() {
            return Ok(Vec::new());
        }
        Ok(self
            .layout
            .kokoro_voices()
            .iter()
            .filter_map(|v| voice_info(v))
            .collect())
    }

    fn limits(&self, _voice: &str) -> TextLimit {
        TextLimit::chars(400)
    }

    fn first_chunk_units(&self, _voice: &str) -> Option<usize> {
        // About 1.5 s of speech: on 2 cores the first audio is ready in under a second.
        Some(25)
    }

    fn max_concurrency(&self) -> usize {
        // One inference at a time uses every core; chunks then also finish in their order,
        // which is the order `/stream` plays them.
        1
    }

    fn price_micros_per_1k_chars(&self) -> u64 {
        0
    }

    #[tracing::instrument(skip_all, fields(provider = ID, voice = %request.voice, chars = request.text.chars().count()), err)]
    async fn synthesize(&self, request: &SynthesisRequest) -> Result<Synthesized, ProviderError> {
        if !self.installed() {
            return Err(Self::not_installed());
        }
        let voice = request.voice.clone();
        let voice_file = self.layout.kokoro_voice(&voice);
        if language(&voice).is_none() || !voice_file.is_file() {
            return Err(unknown(&voice));
        }
        let pieces = self.phonemes(&request.text, &voice).await?;
        if pieces.is_empty() {
            return Err(ProviderError::new(
                ID,
                ErrorKind::Rejected,
                "There is nothing to say in this text",
            ));
        }
        let speed = if request.speed.is_finite() {
            request.speed.clamp(0.5, 2.0)
        } else {
            1.0
        };
        let (runtime, model, threads) = (
            self.runtime.clone(),
            self.layout.kokoro_model(),
            self.threads,
        );
        let samples = self
            .holder
            .run(
                move || load(runtime, model, threads),
                move |engine| engine.speak(&voice, &voice_file, &pieces, speed),
            )
            .await?;
        Ok(Synthesized {
            bytes: pcm_from_f32(&samples).into(),
            format: Format::PcmS16Le {
                sample_rate: SAMPLE_RATE,
                channels: 1,
            },
            model: self.model().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_names_say_language_and_gender() {
        let v = voice_info("af_heart").unwrap();
        assert_eq!(v.id, "kokoro:af_heart");
        assert_eq!(v.name, "Heart");
        assert_eq!(v.language, "en-US");
        assert_eq!(v.gender, Some(Gender::Female));
        let z = voice_info("zm_yunxi").unwrap();
        assert_eq!(z.language, "zh-CN");
        assert_eq!(z.gender, Some(Gender::Male));
        assert_eq!(voice_info("bm_george").unwrap().language, "en-GB");
        assert!(voice_info("xx_nobody").is_none());
    }
}
