//! Voice previews: a short sample of a voice, synthesized (and billed) once, then served to
//! everyone from storage.

use bytes::Bytes;

use crate::audio::Format;
use crate::db::usage::Billed;
use crate::db::{Db, UserId};
use crate::error::ErrorCode;
use crate::error::{AppError, Result};
use crate::providers::{Providers, SynthesisRequest};
use crate::storage::{Storage, keys};

/// A voice's sample: MP3 or WAV bytes.
#[derive(Debug)]
pub struct Sample {
    pub bytes: Bytes,
    pub format: Format,
}

/// What a voice says in its preview: a greeting in its language with its name.
fn preview_text(language: &str, name: &str) -> String {
    if language.starts_with("zh") || language.starts_with("yue") {
        format!("你好，我是{name}。这是一段试听。")
    } else {
        format!("Hello! This is {name}, one of the voices you can use.")
    }
}

/// The preview of `voice_id` for `user`: from storage when any user asked for it before,
/// otherwise synthesized, stored, and billed to `user`.
pub async fn preview(
    providers: &Providers,
    storage: &Storage,
    db: &Db,
    user: UserId,
    voice_id: &str,
) -> Result<Sample> {
    let (provider, voice) = providers.voice(voice_id).await?;
    let text = preview_text(&voice.language, &voice.name);
    let digest = crate::speech::synth::cache_key(
        provider.id(),
        provider.model(),
        &voice.id,
        1.0,
        "preview",
        &text,
    );
    for format in [Format::Mp3, Format::Wav] {
        if let Ok(bytes) = storage
            .get(&keys::preview(&digest, format.extension()))
            .await
        {
            return Ok(Sample { bytes, format });
        }
    }
    let name = voice
        .id
        .split_once(':')
        .map_or(voice.id.as_str(), |(_, v)| v)
        .to_string();
    let request = SynthesisRequest {
        text: text.clone(),
        voice: name,
        speed: 1.0,
        format_hint: Format::Mp3,
        model: None,
        instructions: None,
    };
    let out = crate::providers::speak(provider.as_ref(), &request).await?;
    // Browsers play MP3 and WAV; anything else (the neural voices' raw PCM) is kept as WAV.
    let (bytes, format) = match out.format {
        Format::Mp3 | Format::Wav => (out.bytes, out.format),
        other => {
            let raw = out.bytes;
            let wav = tokio::task::spawn_blocking(move || {
                crate::audio::encode_wav(&crate::audio::decode(&raw, other)?)
            })
            .await
            .map_err(anyhow::Error::from)?
            .map_err(|e| AppError::Unavailable {
                code: ErrorCode::ProviderUnavailable,
                message: format!("This voice cannot be previewed: {e}"),
            })?;
            (Bytes::from(wav), Format::Wav)
        }
    };
    storage
        .put(&keys::preview(&digest, format.extension()), bytes.clone())
        .await?;
    let service = crate::speech::synth::service_of(provider.as_ref());
    let chars = text.chars().count();
    let cost = provider.cost_micros(chars) as i64;
    db.usage()
        .insert(
            user,
            None,
            Billed {
                service,
                units: chars as i64,
                cost_micros: cost,
                cached: false,
            },
        )
        .await?;
    Ok(Sample { bytes, format })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_voices_greet_in_chinese_and_others_in_english() {
        assert_eq!(
            preview_text("zh-CN", "晓晓"),
            "你好，我是晓晓。这是一段试听。"
        );
        assert!(preview_text("yue", "Hiu").starts_with("你好"));
        assert_eq!(
            preview_text("en-US", "Alloy"),
            "Hello! This is Alloy, one of the voices you can use."
        );
    }
}
