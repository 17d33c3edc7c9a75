//! Neural voices that run on this machine: Kokoro-82M and Piper through ONNX Runtime.
//!
//! `runtime` finds and loads ONNX Runtime; `phonemes` turns text into each model's symbols
//! through the espeak-ng program; `engine` holds a loaded model (load on first use, one
//! inference at a time on a blocking thread, unload when idle); `kokoro` and `piper` are the
//! providers.

pub mod engine;
pub mod kokoro;
pub mod normalize;
pub mod phonemes;
pub mod piper;
pub mod runtime;
pub mod zh;

use std::path::Path;

use crate::providers::{ErrorKind, ProviderError};

/// Text ready for a phonemizer: what espeak-ng reads, or Mandarin for the pinyin step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    Espeak {
        text: String,
        /// Latin words inside Chinese text, read as English.
        latin_in_chinese: bool,
    },
    Mandarin(String),
}

/// Numbers, dates, money and abbreviations as words (English and Chinese), then Chinese text
/// split into Han runs for the Mandarin step and Latin runs read as English.
pub fn prepare_text(text: &str, language: &str) -> Vec<Prepared> {
    let lang = normalize::Lang::for_tag(language);
    let text = match lang {
        Some(l) => normalize::normalize(text, l),
        None => text.to_string(),
    };
    if lang != Some(normalize::Lang::Chinese) {
        return vec![Prepared::Espeak {
            text,
            latin_in_chinese: false,
        }];
    }
    zh::split_scripts(&text)
        .into_iter()
        .filter(|(_, run)| run.chars().any(char::is_alphanumeric))
        .map(|(script, run)| match script {
            zh::Script::Han => Prepared::Mandarin(run),
            zh::Script::Latin => Prepared::Espeak {
                text: normalize::normalize(&run, normalize::Lang::English),
                latin_in_chinese: true,
            },
        })
        .collect()
}

/// An ONNX Runtime session for a model file, with `threads` intra-op threads (0: every core).
pub(crate) fn build_session(
    env: &ort::environment::Environment,
    model: &Path,
    threads: usize,
) -> Result<ort::session::Session, String> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let builder = ort::session::Session::builder(env).map_err(|e| e.to_string())?;
    let mut builder = builder
        .with_intra_threads(threads)
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?;
    builder.commit_from_file(model).map_err(|e| e.to_string())
}

/// A model file that cannot be loaded, with what to do about it.
pub(crate) fn model_error(provider: &'static str, model: &Path, reason: String) -> ProviderError {
    ProviderError::new(
        provider,
        ErrorKind::Failed,
        format!(
            "The model file {} cannot be loaded ({reason}); run `aimake models pull` for it again",
            model.display()
        ),
    )
}

/// Float samples in -1..1 as 16-bit little-endian PCM.
pub(crate) fn pcm_from_f32(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for s in samples {
        let v = if s.is_finite() { *s } else { 0.0 };
        out.extend_from_slice(&((v.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    out
}

/// The neural providers, built from config. They are always registered: without a runtime or
/// a model they say so in `/api/providers`, with the command that fixes it.
pub fn providers(config: &crate::config::Config) -> Vec<std::sync::Arc<dyn crate::providers::Tts>> {
    let m = &config.models;
    let layout = crate::models::Layout::new(m.dir(&config.data));
    let runtime = runtime::Runtime::new(m.onnxruntime.clone(), layout.clone());
    let espeak = phonemes::Espeak::new(config.providers.local.command.clone());
    vec![
        std::sync::Arc::new(kokoro::Kokoro::new(
            runtime.clone(),
            layout.clone(),
            espeak.clone(),
            m.threads,
            m.idle_unload_s,
        )),
        std::sync::Arc::new(piper::Piper::new(
            runtime,
            layout,
            espeak,
            m.threads,
            m.idle_unload_s,
            std::sync::Arc::new(|name: &str| {
                let entry = crate::models::Manifest::builtin().get(&format!("piper:{name}"))?;
                Some(piper::Licence {
                    license: entry.license.clone(),
                    commercial_use: entry.commercial_use,
                    gender: None,
                })
            }),
        )),
    ]
}
