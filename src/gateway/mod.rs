//! The OpenAI-compatible speech API (`/v1`) without HTTP: which provider, model and voice
//! speak an OpenAI model and voice name (`route`), speaking a request through the library's
//! synthesis toolkit (`speech`), and the model and voice lists clients discover.

pub mod route;
pub mod speech;

use serde::Serialize;

use crate::config::{GatewayConfig, OPENAI_VOICE_NAMES};
use crate::providers::Providers;

/// The providers that can speak now: enabled, and ready by their own cheap check.
pub fn ready(providers: &Providers) -> Vec<&'static str> {
    providers
        .enabled()
        .filter(|p| p.ready())
        .map(|p| p.id())
        .collect()
}

/// One model of `GET /v1/models`, in OpenAI's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Model {
    pub id: String,
    pub object: &'static str,
    /// Unix seconds; the server's start, since routes are made then.
    pub created: u64,
    /// The provider that speaks it now.
    pub owned_by: String,
}

/// The speech models, by name: every route of `gateway.models`.
pub fn models(config: &GatewayConfig, ready: &[&str], created: u64) -> Vec<Model> {
    config
        .models
        .0
        .keys()
        .map(|id| Model {
            owned_by: route::speaker(config, id, ready)
                .unwrap_or("aimake")
                .to_string(),
            id: id.clone(),
            object: "model",
            created,
        })
        .collect()
}

/// One entry of the lists Open WebUI reads (`{models: [{id, name}]}`,
/// `{voices: [{id, name}]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// The voice names a request may use: OpenAI's (routed by `gateway.voices`), then every
/// voice id of the providers that can speak (`kokoro:af_heart`), named with their provider.
pub async fn voices(providers: &Providers) -> Vec<Named> {
    let openai = OPENAI_VOICE_NAMES.iter().map(|name| Named {
        id: name.to_string(),
        name: name.to_string(),
    });
    let own = providers
        .voices(None, None)
        .await
        .into_iter()
        .map(|v| Named {
            name: format!("{} ({})", v.name, v.provider),
            id: v.id,
        });
    openai.chain(own).collect()
}
