//! A fake ElevenLabs: `GET /v1/voices`, `POST /v1/text-to-speech/{voice_id}[/stream]` and
//! `POST /v1/speech-to-text` (Scribe, multipart), all with `xi-api-key`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aimake::config::{Config, Secret};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    Control, Failure, GARBAGE, Recorded, Server, Upload, audio_seconds, heard, mp3, pcm,
    read_request, read_upload, speech_ms,
};

const KEY: &str = "el-test-key-4f1c2b";

/// Voices of the account: id, name, gender label.
pub const VOICES: &[(&str, &str, &str)] = &[
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", "female"),
    ("pNInz6obpgDQGcFmaJgB", "Adam", "male"),
];

struct FakeState {
    control: Control,
    /// Requests over this many at once get 429 `too_many_concurrent_requests`.
    concurrency_limit: AtomicUsize,
}

pub struct FakeElevenLabs {
    state: Arc<FakeState>,
    server: Server,
}

impl FakeElevenLabs {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState {
            control: Control::default(),
            // The Free plan's limit.
            concurrency_limit: AtomicUsize::new(2),
        });
        let router = Router::new()
            .route("/v1/voices", get(voices))
            .route("/v1/text-to-speech/{voice_id}", post(speech))
            .route("/v1/text-to-speech/{voice_id}/stream", post(speech))
            .route("/v1/speech-to-text", post(speech_to_text))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        Self {
            state,
            server: Server::start(router).await,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn api_key(&self) -> &'static str {
        KEY
    }

    /// Points the ElevenLabs provider at this fake with the right key.
    pub fn configure(&self, config: &mut Config) {
        let c = &mut config.providers.elevenlabs;
        c.base_url = self.base_url();
        c.api_key = Some(Secret::new(KEY));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.control.requests()
    }

    /// Requests for the voice list.
    pub fn voice_list_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path() == "/v1/voices")
            .count()
    }

    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.state.control.fail_next(n, failure);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.control.set_delay(delay);
    }

    pub fn set_concurrency_limit(&self, n: usize) {
        self.state.concurrency_limit.store(n, Ordering::SeqCst);
    }

    /// The most syntheses that ever ran at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.control.max_in_flight()
    }

    /// The multipart uploads speech to text received, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.state.control.uploads()
    }
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"detail": {"status": code, "message": message}})),
    )
        .into_response()
}

/// The 401 to answer when the `xi-api-key` header is missing or wrong.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    match headers.get("xi-api-key").and_then(|v| v.to_str().ok()) {
        Some(KEY) => None,
        _ => Some(detail(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid API key",
        )),
    }
}

async fn voices(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state.control.record(&method, &uri, &headers, &Bytes::new());
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let voices: Vec<Value> = VOICES
        .iter()
        .map(|(id, name, gender)| {
            json!({
                "voice_id": id,
                "name": name,
                "category": "premade",
                "labels": {"accent": "american", "gender": gender, "age": "young"},
                "description": null,
                "preview_url": format!("https://example.invalid/{id}.mp3"),
                "settings": null,
                "samples": null,
            })
        })
        .collect();
    axum::Json(json!({ "voices": voices })).into_response()
}

fn model_limit(model: &str) -> Option<usize> {
    match model {
        "eleven_flash_v2_5" | "eleven_turbo_v2_5" => Some(40_000),
        "eleven_flash_v2" | "eleven_turbo_v2" => Some(30_000),
        "eleven_multilingual_v2" | "eleven_multilingual_v1" | "eleven_monolingual_v1" => {
            Some(10_000)
        }
        _ => None,
    }
}

async fn speech(
    State(state): State<Arc<FakeState>>,
    Path(voice_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = &state.control;
    control.record(&method, &uri, &headers, &body);
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let (_guard, running) = control.enter();
    if running > state.concurrency_limit.load(Ordering::SeqCst) {
        return detail(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_concurrent_requests",
            "You are sending too many concurrent requests for your plan.",
        );
    }
    if let Some(failed) = failure(control, &headers).await {
        return failed;
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let output_format = query
        .iter()
        .find(|(k, _)| k == "output_format")
        .map_or("mp3_44100_128", |(_, v)| v.as_str())
        .to_string();
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return unprocessable("body", "Input should be a valid JSON object");
    };
    let Some(text) = req.get("text").and_then(Value::as_str) else {
        return unprocessable("text", "Field required");
    };
    let model = req
        .get("model_id")
        .and_then(Value::as_str)
        .unwrap_or("eleven_multilingual_v2");
    let Some(limit) = model_limit(model) else {
        return detail(
            StatusCode::BAD_REQUEST,
            "model_not_found",
            &format!("A model with model ID {model} does not exist."),
        );
    };
    if !VOICES.iter().any(|(id, _, _)| *id == voice_id) {
        return detail(
            StatusCode::BAD_REQUEST,
            "voice_not_found",
            &format!("A voice with voice_id {voice_id} was not found."),
        );
    }
    let chars = text.chars().count();
    if chars > limit {
        return detail(
            StatusCode::BAD_REQUEST,
            "max_character_limit_exceeded",
            &format!("Text has {chars} characters and exceeds the {limit} character limit."),
        );
    }
    if let Some(speed) = req.pointer("/voice_settings/speed") {
        match speed.as_f64() {
            Some(s) if (0.7..=1.2).contains(&s) => {}
            _ => return unprocessable("speed", "speed must be between 0.7 and 1.2"),
        }
    }
    control.work().await;
    let ms = speech_ms(text);
    let mut parts = output_format.split('_');
    match (
        parts.next(),
        parts.next().and_then(|r| r.parse::<u32>().ok()),
    ) {
        (Some("mp3"), Some(_)) => ([(header::CONTENT_TYPE, "audio/mpeg")], mp3(ms)).into_response(),
        (Some("pcm"), Some(rate)) => {
            ([(header::CONTENT_TYPE, "audio/pcm")], pcm(ms, rate)).into_response()
        }
        _ => unprocessable("output_format", "Invalid output format"),
    }
}

fn unprocessable(field: &str, msg: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(
            json!({"detail": [{"loc": ["body", field], "msg": msg, "type": "value_error"}]}),
        ),
    )
        .into_response()
}

/// The next failure the fake was told to answer with, as ElevenLabs answers it.
async fn failure(control: &Control, headers: &HeaderMap) -> Option<Response> {
    let failure = control.next_failure()?;
    Some(match failure {
        Failure::RateLimited { retry_after_s } => {
            let mut r = detail(
                StatusCode::TOO_MANY_REQUESTS,
                "system_busy",
                "We are experiencing heavy traffic, please try again later.",
            );
            if let Some(s) = retry_after_s {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().unwrap());
            }
            r
        }
        Failure::ServerError => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Failure::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Failure::GarbageAudio => ([(header::CONTENT_TYPE, "audio/mpeg")], GARBAGE).into_response(),
        Failure::EchoCredentials => {
            let key = headers
                .get("xi-api-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            detail(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("Malformed request from {key}; headers: {{\"xi-api-key\": \"{key}\"}}"),
            )
        }
        Failure::QuotaExceeded => detail(
            StatusCode::UNAUTHORIZED,
            "quota_exceeded",
            "This request exceeds your quota of 10000. You have 12 credits remaining.",
        ),
    })
}

const SCRIBE_MODELS: &[&str] = &["scribe_v1", "scribe_v2"];

/// Scribe: words, the spacing between them and a sound after the first sentence, each with
/// its speaker when `diarize` is on (speakers take turns sentence by sentence).
async fn speech_to_text(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    let control = &state.control;
    let (parts, body) = read_request(request).await;
    let headers = parts.headers.clone();
    control.record(&parts.method, &parts.uri, &headers, &body);
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let (_guard, running) = control.enter();
    if running > state.concurrency_limit.load(Ordering::SeqCst) {
        return detail(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_concurrent_requests",
            "You are sending too many concurrent requests for your plan.",
        );
    }
    if let Some(failed) = failure(control, &headers).await {
        return failed;
    }
    let upload = match read_upload(parts, &body).await {
        Ok(upload) => upload,
        Err(reason) => return unprocessable("body", &reason),
    };
    control.record_upload(&upload);
    let Some(model) = upload.field("model_id") else {
        return unprocessable("model_id", "Field required");
    };
    if !SCRIBE_MODELS.contains(&model) {
        return detail(
            StatusCode::BAD_REQUEST,
            "invalid_model",
            &format!("Model {model} is not a speech to text model."),
        );
    }
    let Some((_, _, audio)) = &upload.file else {
        return unprocessable("file", "Field required");
    };
    let Some(seconds) = audio_seconds(audio) else {
        return detail(
            StatusCode::BAD_REQUEST,
            "invalid_content",
            "The uploaded file could not be decoded as audio.",
        );
    };
    let diarize = upload.field("diarize") == Some("true");
    let timed = upload.field("timestamps_granularity") != Some("none");
    let chinese = upload.field("language_code") == Some("zh");
    control.work().await;
    let words = heard(seconds, chinese);
    let speaker = |sentence: usize| diarize.then(|| format!("speaker_{}", sentence % 2));
    let mut entries = Vec::new();
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        entries.push(json!({
            "text": w.word, "start": w.start, "end": w.end, "type": "word",
            "speaker_id": speaker(w.sentence), "logprob": -0.1,
        }));
        text.push_str(&w.word);
        let Some(next) = words.get(i + 1) else {
            continue;
        };
        if w.sentence == 0 && next.sentence == 1 {
            entries.push(json!({
                "text": "(laughter)", "start": w.end, "end": next.start, "type": "audio_event",
                "speaker_id": speaker(next.sentence), "logprob": 0.0,
            }));
            text.push_str(" (laughter)");
        }
        if !chinese {
            entries.push(json!({
                "text": " ", "start": w.end, "end": next.start, "type": "spacing",
                "speaker_id": speaker(w.sentence), "logprob": 0.0,
            }));
            text.push(' ');
        }
    }
    axum::Json(json!({
        "language_code": if chinese { "cmn" } else { "eng" },
        "language_probability": 0.98,
        "text": text,
        "words": if timed { entries } else { Vec::new() },
    }))
    .into_response()
}
