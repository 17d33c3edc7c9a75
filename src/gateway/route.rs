//! Which provider, model and voice speak an OpenAI-style request: a pure function of the
//! `[gateway]` config and of which providers are ready, so every rule is unit-tested here.

use crate::config::{GATEWAY_PROVIDERS, GatewayConfig};

/// The voices on this machine, best first: where a model whose provider is off is spoken.
pub const LOCAL_PREFERENCE: [&str; 3] = ["kokoro", "piper", "local"];

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub provider: String,
    /// The model the route names for its provider (`tts-1-hd` of `openai:tts-1-hd`); none
    /// when the request lands on another provider than the route's.
    pub model: Option<String>,
    /// The voice's name within the provider (the part after `provider:`).
    pub voice: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("The model `{0}` does not exist; GET /v1/models lists the models of this server")]
    UnknownModel(String),
    #[error(
        "No voice `{voice}` for the model `{model}`: use an OpenAI voice name (alloy, nova, …) \
         or a voice id from GET /v1/audio/voices"
    )]
    UnknownVoice { model: String, voice: String },
}

/// Routes `model` and `voice` (an OpenAI voice name, a provider's own voice name, or an
/// aimake voice id `provider:voice`) given the providers that are `ready`:
/// - an aimake voice id is spoken by its own provider, whatever the model;
/// - otherwise by the model's provider when it is ready: OpenAI voice names through
///   `gateway.voices` (OpenAI-compatible servers take them as they are), any other name as
///   that provider's own voice name;
/// - when the model's provider is off, by the best voice on this machine
///   ([`LOCAL_PREFERENCE`]) that `gateway.voices` has the name for.
pub fn route(
    config: &GatewayConfig,
    model: &str,
    voice: &str,
    ready: &[&str],
) -> Result<Route, RouteError> {
    let target = config
        .models
        .0
        .get(model)
        .ok_or_else(|| RouteError::UnknownModel(model.to_string()))?;
    let (provider, routed_model) = match target.split_once(':') {
        Some((p, m)) => (p, Some(m)),
        None => (target.as_str(), None),
    };
    let model_for = |chosen: &str| {
        routed_model
            .filter(|_| chosen == provider)
            .map(str::to_string)
    };
    if let Some((own, name)) = voice.split_once(':')
        && GATEWAY_PROVIDERS.contains(&own)
    {
        return Ok(Route {
            provider: own.to_string(),
            model: model_for(own),
            voice: name.to_string(),
        });
    }
    let candidates = std::iter::once(provider)
        .chain(LOCAL_PREFERENCE.into_iter().filter(|p| *p != provider))
        .filter(|p| ready.contains(p));
    for candidate in candidates {
        let mapped = config.voices.0.get(candidate).and_then(|t| t.get(voice));
        let spoken = match mapped {
            Some(v) => v.clone(),
            None if candidate == provider => voice.to_string(),
            None => continue,
        };
        return Ok(Route {
            provider: candidate.to_string(),
            model: model_for(candidate),
            voice: spoken,
        });
    }
    Err(RouteError::UnknownVoice {
        model: model.to_string(),
        voice: voice.to_string(),
    })
}

/// The provider that speaks `model` now: its own when ready, else the best ready voice on
/// this machine (what [`route`] falls back to), else its own.
pub fn speaker<'a>(config: &'a GatewayConfig, model: &str, ready: &[&str]) -> Option<&'a str> {
    let target = config.models.0.get(model)?;
    let provider = target.split_once(':').map_or(target.as_str(), |(p, _)| p);
    if ready.contains(&provider) {
        return Some(provider);
    }
    Some(
        LOCAL_PREFERENCE
            .into_iter()
            .find(|p| ready.contains(p))
            .unwrap_or(provider),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, OPENAI_VOICE_NAMES};

    fn config(file: &str) -> GatewayConfig {
        Config::from_sources(Some(file), &[])
            .unwrap()
            .config
            .gateway
    }

    fn to(provider: &str, model: Option<&str>, voice: &str) -> Route {
        Route {
            provider: provider.into(),
            model: model.map(str::to_string),
            voice: voice.into(),
        }
    }

    #[test]
    fn openai_models_go_to_openai_with_their_model_and_the_voice_as_it_is() {
        let c = GatewayConfig::default();
        let ready = ["openai", "kokoro", "local"];
        assert_eq!(
            route(&c, "tts-1-hd", "nova", &ready),
            Ok(to("openai", Some("tts-1-hd"), "nova"))
        );
        assert_eq!(
            route(&c, "gpt-4o-mini-tts", "marin", &ready),
            Ok(to("openai", Some("gpt-4o-mini-tts"), "marin"))
        );
        // A compatible server's own names pass through too (Kokoro-FastAPI's af_bella).
        assert_eq!(
            route(&c, "tts-1", "af_bella", &ready),
            Ok(to("openai", Some("tts-1"), "af_bella"))
        );
    }

    #[test]
    fn without_openai_a_voice_name_reaches_the_best_local_voice_mapped_for_it() {
        let c = GatewayConfig::default();
        assert_eq!(
            route(&c, "tts-1", "nova", &["kokoro", "piper", "local"]),
            Ok(to("kokoro", None, "af_nova"))
        );
        assert_eq!(
            route(&c, "tts-1", "onyx", &["piper", "local"]),
            Ok(to("piper", None, "en_US-joe-medium"))
        );
        assert_eq!(
            route(&c, "tts-1", "fable", &["local"]),
            Ok(to("local", None, "en-gb"))
        );
        assert_eq!(
            route(&c, "tts-1-hd", "alloy", &["local"]),
            Ok(to("local", None, "en-us"))
        );
        // Every OpenAI voice name has a voice on every local engine.
        for name in OPENAI_VOICE_NAMES {
            for engine in LOCAL_PREFERENCE {
                let r = route(&c, "gpt-4o-mini-tts", name, &[engine]).unwrap();
                assert_eq!(r.provider, engine, "{name}");
            }
        }
        // A name no local voice is mapped for is refused rather than guessed.
        assert_eq!(
            route(&c, "tts-1", "af_bella", &["local"]),
            Err(RouteError::UnknownVoice {
                model: "tts-1".into(),
                voice: "af_bella".into()
            })
        );
    }

    #[test]
    fn an_aimake_voice_id_is_spoken_by_its_own_provider() {
        let c = GatewayConfig::default();
        assert_eq!(
            route(&c, "tts-1", "kokoro:af_heart", &["openai", "kokoro"]),
            Ok(to("kokoro", None, "af_heart"))
        );
        assert_eq!(
            route(&c, "tts-1-hd", "openai:echo", &["openai"]),
            Ok(to("openai", Some("tts-1-hd"), "echo"))
        );
        // Whether that provider is on is for the registry to say, with its own message.
        assert_eq!(
            route(&c, "tts-1", "elevenlabs:abc", &["local"]),
            Ok(to("elevenlabs", None, "abc"))
        );
    }

    #[test]
    fn unknown_models_are_refused_and_configured_routes_and_voices_apply() {
        let c = GatewayConfig::default();
        assert_eq!(
            route(&c, "tts-2", "alloy", &["local"]),
            Err(RouteError::UnknownModel("tts-2".into()))
        );
        let c = config(
            "[gateway.models]\nespeak = \"local\"\ntts-1-hd = \"\"\n\
             [gateway.voices]\nlocal = { nova = \"en-029\" }\n",
        );
        assert_eq!(
            route(&c, "espeak", "nova", &["openai", "local"]),
            Ok(to("local", None, "en-029"))
        );
        // Names not set keep their built-in voice; a provider's own names pass through.
        assert_eq!(
            route(&c, "espeak", "fable", &["local"]),
            Ok(to("local", None, "en-gb"))
        );
        assert_eq!(
            route(&c, "espeak", "fr-fr", &["local"]),
            Ok(to("local", None, "fr-fr"))
        );
        assert_eq!(
            route(&c, "tts-1-hd", "nova", &["openai"]),
            Err(RouteError::UnknownModel("tts-1-hd".into()))
        );
        assert!(c.models.0.contains_key("tts-1"), "the other built-ins stay");
    }

    #[test]
    fn the_speaker_of_a_model_is_its_provider_or_the_fallback() {
        let c = GatewayConfig::default();
        assert_eq!(speaker(&c, "tts-1", &["openai", "local"]), Some("openai"));
        assert_eq!(speaker(&c, "tts-1", &["piper", "local"]), Some("piper"));
        assert_eq!(speaker(&c, "tts-1", &[]), Some("openai"));
        assert_eq!(speaker(&c, "nope", &["local"]), None);
    }

    #[test]
    fn the_gateway_s_provider_list_is_the_registry_s() {
        assert_eq!(GATEWAY_PROVIDERS, crate::providers::PROVIDER_IDS);
    }

    #[test]
    fn bad_routes_are_refused_when_the_config_loads() {
        for (file, says) in [
            ("[gateway.models]\nx = \"nobody\"\n", "names no provider"),
            ("[gateway.models]\nx = \"openai:\"\n", "empty model"),
            (
                "[gateway.voices]\nnobody = { alloy = \"a\" }\n",
                "not a provider",
            ),
            (
                "[gateway]\nmax_input_chars = 0\n",
                "gateway.max_input_chars",
            ),
        ] {
            let err = format!("{:#}", Config::from_sources(Some(file), &[]).unwrap_err());
            assert!(err.contains(says), "{file}: {err}");
        }
    }
}
