//! Piper voices as the `piper` provider: one ONNX model per voice, with a JSON config beside it
//! naming its espeak-ng voice, sample rate and symbol table.
//!
//! Piper's models draw random noise inside the graph (for prosody and durations), scaled by
//! the `scales` input. aimake runs them with both noise scales at zero so the same text, voice
//! and speed always give the same audio (the result cache and resumed jobs rely on that); the
//! speech stays clear and natural, slightly more even in pitch.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ort::session::Session;
use ort::value::Tensor;
use parking_lot::Mutex;
use serde::Deserialize;

use super::engine::Holder;
use super::phonemes::{self, Espeak, PiperSymbols};
use super::runtime::Runtime;
use super::{Prepared, build_session, model_error, pcm_from_f32, prepare_text};
use crate::audio::Format;
use crate::models::{Layout, PiperFiles};
use crate::providers::{
    ErrorKind, Gender, ProviderError, ProviderStatus, Quality, SynthesisRequest, Synthesized,
    TextLimit, Tts, Voice,
};

const ID: &str = "piper";

/// The parts of a voice's `.onnx.json` that synthesis needs.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    pub language: Option<LanguageConfig>,
    #[serde(default)]
    pub num_speakers: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
    #[serde(default)]
    pub quality: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InferenceConfig {
    #[serde(default = "one")]
    pub length_scale: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self { length_scale: 1.0 }
    }
}

fn one() -> f32 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
pub struct LanguageConfig {
    pub code: String,
}

impl VoiceConfig {
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("not a Piper voice config: {e}"))
    }

    /// `en_US` → `en-US`.
    fn bcp47(&self, name: &str) -> String {
        let code = self
            .language
            .as_ref()
            .map(|l| l.code.clone())
            .unwrap_or_else(|| name.split('-').next().unwrap_or(name).to_string());
        code.replace('_', "-")
    }
}

/// What the compiled-in manifest knows of a voice: licence and whether it allows commercial use.
#[derive(Debug, Clone)]
pub struct Licence {
    pub license: String,
    pub commercial_use: bool,
    pub gender: Option<Gender>,
}

/// Looks up a voice's licence by name (the manifest's knowledge).
pub type Licences = Arc<dyn Fn(&str) -> Option<Licence> + Send + Sync>;

struct Engine {
    session: Session,
    symbols: PiperSymbols,
    has_sid: bool,
}

/// One installed voice and its loaded model.
struct Installed {
    files: PiperFiles,
    holder: Arc<Holder<Engine>>,
}

pub struct Piper {
    runtime: Runtime,
    layout: Layout,
    espeak: Espeak,
    threads: usize,
    idle_unload_s: u64,
    licences: Licences,
    voices: Mutex<HashMap<String, Arc<Installed>>>,
}

impl Piper {
    pub fn new(
        runtime: Runtime,
        layout: Layout,
        espeak: Espeak,
        threads: usize,
        idle_unload_s: u64,
        licences: Licences,
    ) -> Self {
        Self {
            runtime,
            layout,
            espeak,
            threads,
            idle_unload_s,
            licences,
            voices: Mutex::new(HashMap::new()),
        }
    }

    fn installed(&self, name: &str) -> Option<Arc<Installed>> {
        let files = self.layout.piper_voice(name);
        if !files.onnx.is_file() || !files.config.is_file() {
            self.voices.lock().remove(name);
            return None;
        }
        let mut voices = self.voices.lock();
        Some(
            voices
                .entry(name.to_string())
                .or_insert_with(|| {
                    Arc::new(Installed {
                        files,
                        holder: Arc::new(Holder::new(format!("piper:{name}"), self.idle_unload_s)),
                    })
                })
                .clone(),
        )
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        self.voices
            .lock()
            .get(name)
            .is_some_and(|v| v.holder.is_loaded())
    }

    fn voice_info(&self, files: &PiperFiles) -> Option<Voice> {
        let config = VoiceConfig::read(&files.config).ok()?;
        let licence = (self.licences)(&files.name);
        let quality = match config.audio.quality.as_deref() {
            Some("high") => Quality::High,
            _ => Quality::Good,
        };
        // `en_US-joe-medium` is shown as `Joe (medium)`.
        let mut parts = files.name.splitn(3, '-');
        let _lang = parts.next();
        let speaker = parts.next().unwrap_or(&files.name).replace('_', " ");
        let mut display = speaker.clone();
        if let Some(first) = speaker.get(..1) {
            display = first.to_uppercase() + &speaker[1..];
        }
        if let Some(q) = parts.next() {
            display = format!("{display} ({q})");
        }
        let mut voice = Voice::new(
            ID,
            &files.name,
            display,
            config.bcp47(&files.name),
            licence.as_ref().and_then(|l| l.gender),
        )
        .with_quality(quality);
        if let Some(l) = licence {
            voice = voice.with_license(&l.license, l.commercial_use);
        }
        Some(voice)
    }
}

fn load(
    runtime: Runtime,
    files: PiperFiles,
    threads: usize,
) -> Result<(Engine, VoiceConfig), ProviderError> {
    let env = runtime
        .environment()
        .map_err(|e| ProviderError::new(ID, ErrorKind::Unavailable, e.to_string()))?;
    let config = VoiceConfig::read(&files.config).map_err(|e| model_error(ID, &files.config, e))?;
    let symbols = PiperSymbols::new(config.phoneme_id_map.clone())
        .map_err(|e| model_error(ID, &files.config, e))?;
    let session =
        build_session(&env, &files.onnx, threads).map_err(|e| model_error(ID, &files.onnx, e))?;
    for needed in ["input", "input_lengths", "scales"] {
        if !session.inputs().iter().any(|i| i.name() == needed) {
            return Err(model_error(
                ID,
                &files.onnx,
                format!("it has no `{needed}` input: it is not a Piper voice"),
            ));
        }
    }
    let has_sid = session.inputs().iter().any(|i| i.name() == "sid");
    Ok((
        Engine {
            session,
            symbols,
            has_sid,
        },
        config,
    ))
}

impl Engine {
    fn speak(&mut self, pieces: &[String], length_scale: f32) -> Result<Vec<f32>, ProviderError> {
        let failed = |e: ort::Error| {
            ProviderError::new(
                ID,
                ErrorKind::Failed,
                format!("Piper inference failed: {e}"),
            )
        };
        let mut samples = Vec::new();
        for piece in pieces {
            let ids = self.symbols.ids(piece);
            if ids.len() <= 3 {
                continue;
            }
            let n = ids.len();
            let mut inputs = ort::inputs![
                "input" => Tensor::from_array(([1usize, n], ids)).map_err(failed)?,
                "input_lengths" => Tensor::from_array(([1usize], vec![n as i64])).map_err(failed)?,
                // noise_scale, length_scale, noise_w: no noise, so output is repeatable.
                "scales" => Tensor::from_array(([3usize], vec![0.0f32, length_scale, 0.0])).map_err(failed)?,
            ];
            if self.has_sid {
                inputs.push((
                    "sid".into(),
                    Tensor::from_array(([1usize], vec![0i64]))
                        .map_err(failed)?
                        .into(),
                ));
            }
            let outputs = self.session.run(inputs).map_err(failed)?;
            let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
            samples.extend_from_slice(audio);
        }
        Ok(samples)
    }
}

#[async_trait]
impl Tts for Piper {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        "piper"
    }

    async fn status(&self) -> ProviderStatus {
        let voices = self.layout.piper_voices();
        match self.runtime.status() {
            Err(e) => ProviderStatus {
                available: false,
                detail: e.to_string(),
            },
            Ok(_) if voices.is_empty() => ProviderStatus {
                available: false,
                detail: "No Piper voice is installed: run `aimake models list` and \
                         `aimake models pull piper:<voice>`"
                    .into(),
            },
            Ok(rt) => ProviderStatus {
                available: true,
                detail: format!("{} Piper voice(s) on {rt}", voices.len()),
            },
        }
    }

    fn ready(&self) -> bool {
        !self.layout.piper_voices().is_empty() && self.runtime.status().is_ok()
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        Ok(self
            .layout
            .piper_voices()
            .iter()
            .filter_map(|f| self.voice_info(f))
            .collect())
    }

    fn limits(&self, _voice: &str) -> TextLimit {
        TextLimit::chars(600)
    }

    fn first_chunk_units(&self, _voice: &str) -> Option<usize> {
        Some(80)
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
        let installed = self.installed(&request.voice).ok_or_else(|| {
            ProviderError::new(
                ID,
                ErrorKind::UnknownVoice,
                format!(
                    "There is no Piper voice `{}` on this server (`aimake models list` shows what can be installed)",
                    request.voice
                ),
            )
        })?;
        let config = VoiceConfig::read(&installed.files.config)
            .map_err(|e| model_error(ID, &installed.files.config, e))?;
        let language = config.bcp47(&installed.files.name);
        let mut text = String::new();
        for part in prepare_text(&request.text, &language) {
            // Piper voices speak through espeak-ng alone, Chinese ones included.
            let (Prepared::Espeak { text: t, .. } | Prepared::Mandarin(t)) = part;
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&t);
        }
        let clauses = phonemes::clauses(&text);
        let ipa = self
            .espeak
            .ipa(&config.espeak.voice, &clauses, false)
            .await?;
        let joined = phonemes::join_clauses(&clauses, &ipa);
        // Piper's input has no fixed limit; a sentence at a time keeps memory flat.
        let pieces = phonemes::split_phonemes(&joined, 400);
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
        let length_scale = config.inference.length_scale / speed;
        let sample_rate = config.audio.sample_rate;
        let (runtime, files, threads) =
            (self.runtime.clone(), installed.files.clone(), self.threads);
        let samples = installed
            .holder
            .run(
                move || load(runtime, files, threads).map(|(engine, _)| engine),
                move |engine| engine.speak(&pieces, length_scale),
            )
            .await?;
        Ok(Synthesized {
            bytes: pcm_from_f32(&samples).into(),
            format: Format::PcmS16Le {
                sample_rate,
                channels: 1,
            },
            model: format!("piper:{}", request.voice),
        })
    }
}
