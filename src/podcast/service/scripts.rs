//! Scripts: a pasted dialogue, or one the language model writes from a topic or a text.

use serde::{Deserialize, Serialize};

use super::shows::get;
use crate::db::{PodcastId, UserId};
use crate::error::Result;
use crate::podcast::llm::{LlmError, ScriptRequest, ScriptWriter, Source, SpeakerBrief};
use crate::podcast::script::{FlatLine, ScriptLimits, parse_dialogue};
use crate::services::Services;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ScriptSource {
    Topic(String),
    Text(String),
    /// `Name: text` lines, parsed here without a model.
    Dialogue(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerVoice {
    pub name: String,
    /// Needed to render; optional when only asking for a script.
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    pub source: ScriptSource,
    pub speakers: Vec<SpeakerVoice>,
    pub minutes: Option<u32>,
    pub language: Option<String>,
    pub style: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptView {
    pub lines: Vec<FlatLine>,
    pub notes: Vec<String>,
}

pub(super) fn limits(state: &Services) -> ScriptLimits {
    ScriptLimits {
        max_chars: state.config.tts.max_chars,
    }
}

/// A script from a pasted dialogue (no model involved) or from the configured LLM, whose
/// token usage and cost go to the ledger, also when its answer was unusable.
pub async fn write_script(
    state: &Services,
    llm: &ScriptWriter,
    user: UserId,
    podcast: PodcastId,
    body: ScriptBody,
) -> Result<ScriptView> {
    let show = get(state, user, podcast).await?;
    let names: Vec<String> = body
        .speakers
        .iter()
        .map(|s| s.name.trim().to_string())
        .collect();
    let source = match body.source {
        ScriptSource::Dialogue(text) => {
            let text = crate::speech::text::spoken(&text)
                .map_err(|p| p.for_field("source.dialogue", "The dialogue"))?;
            let mut script = parse_dialogue(&text, &names)?;
            let known: Vec<String> = if names.is_empty() {
                script.speakers().into_iter().map(str::to_string).collect()
            } else {
                names
            };
            script.normalize(&known);
            script.validate(&known, &limits(state))?;
            return Ok(ScriptView {
                lines: script.to_flat().lines,
                notes: Vec::new(),
            });
        }
        ScriptSource::Topic(t) => Source::Topic(t),
        ScriptSource::Text(t) => Source::Text(t),
    };
    let request = ScriptRequest {
        source,
        speakers: body
            .speakers
            .into_iter()
            .map(|s| SpeakerBrief {
                name: s.name.trim().to_string(),
                role: s.role,
            })
            .collect(),
        minutes: body.minutes.unwrap_or(5),
        language: body.language.or(show.language),
        style: body.style,
    };
    let result = llm.write_script(&request).await;
    let spent = match &result {
        Ok(draft) => Some((draft.usage, draft.model.clone())),
        Err(LlmError::BadOutput { usage, .. }) => Some((*usage, llm.model().to_string())),
        Err(_) => None,
    };
    if let Some((u, model)) = spent
        && u.prompt_tokens + u.completion_tokens > 0
    {
        let billed = crate::db::usage::Billed {
            service: format!("llm:{model}"),
            units: (u.prompt_tokens + u.completion_tokens) as i64,
            cost_micros: u.cost_micros as i64,
            cached: false,
        };
        state.db.usage().insert(user, None, billed).await?;
    }
    let draft = result?;
    Ok(ScriptView {
        lines: draft.script.to_flat().lines,
        notes: draft.notes,
    })
}
