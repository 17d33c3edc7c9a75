//! A fake OpenAI-compatible audio server with Bearer keys: `POST /v1/audio/speech`, and
//! `POST /v1/audio/transcriptions` and `/translations` (multipart, every `response_format`,
//! the 25 MB limit), which transcribe what they hear in the upload.

use std::sync::Arc;
use std::time::Duration;

use aimake::config::{Config, Secret};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    Control, Failure, GARBAGE, Recorded, Server, Upload, audio_seconds, heard, heard_text, mp3,
    pcm, read_request, read_upload, sentences, speech_ms, wav,
};

const KEY: &str = "sk-test-0123456789abcdef";
const MAX_INPUT_CHARS: usize = 4096;
const VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];

pub struct FakeOpenAi {
    control: Arc<Control>,
    server: Server,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let control = Arc::new(Control::default());
        let router = Router::new()
            .route("/v1/audio/speech", post(speech))
            .route("/v1/audio/transcriptions", post(transcriptions))
            .route("/v1/audio/translations", post(translations))
            // The 25 MB limit is the fake's own, answered with OpenAI's 413.
            .layer(DefaultBodyLimit::disable())
            .with_state(control.clone());
        Self {
            control,
            server: Server::start(router).await,
        }
    }

    /// What `providers.openai.base_url` should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    pub fn api_key(&self) -> &'static str {
        KEY
    }

    /// Points the OpenAI provider at this fake, with the right key and `tts-1`.
    pub fn configure(&self, config: &mut Config) {
        let c = &mut config.providers.openai;
        c.base_url = self.base_url();
        c.api_key = Some(Secret::new(KEY));
        c.model = "tts-1".into();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.control.requests()
    }

    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.control.fail_next(n, failure);
    }

    /// Answers as usual again, whatever failures were still queued.
    pub fn recover(&self) {
        self.control.recover();
    }

    /// How long each synthesis takes from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.control.set_delay(delay);
    }

    pub fn max_in_flight(&self) -> usize {
        self.control.max_in_flight()
    }

    /// The multipart uploads transcriptions and translations received, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.control.uploads()
    }
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

fn invalid(message: &str, param: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        Some(param),
        None,
    )
}

async fn speech(
    State(control): State<Arc<Control>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    control.record(&method, &uri, &headers, &body);
    if let Some(refused) = unauthorized(&headers) {
        return refused;
    }
    let mut response = match control.next_failure() {
        Some(Failure::EchoCredentials) => return echo_credentials(&headers),
        Some(failure) => return fail(&control, failure).await,
        None => synthesize(&control, &body).await,
    };
    add_headers(&mut response);
    response
}

/// The 401 for a missing or wrong Bearer key.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(KEY) {
        // The real message quotes part of the key, which clients must not pass on.
        let shown = bearer.map_or("none".to_string(), |k| {
            format!(
                "{}***{}",
                &k[..k.len().min(5)],
                &k[k.len().saturating_sub(2)..]
            )
        });
        return Some(error(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {shown}. You can find your API key in your account settings."
            ),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ));
    }
    None
}

fn echo_credentials(headers: &HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    invalid(
        &format!(
            "The gateway refused the request (key {KEY}). Received headers: authorization: {auth}"
        ),
        "headers",
    )
}

/// The headers OpenAI sends with every answer.
fn add_headers(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(
        "x-request-id",
        ulid::Ulid::generate().to_string().parse().unwrap(),
    );
    h.insert("openai-version", "2020-10-01".parse().unwrap());
    h.insert("openai-processing-ms", "12".parse().unwrap());
    h.insert("x-ratelimit-limit-requests", "500".parse().unwrap());
    h.insert("x-ratelimit-remaining-requests", "499".parse().unwrap());
    h.insert("x-ratelimit-reset-requests", "120ms".parse().unwrap());
}

async fn fail(control: &Control, failure: Failure) -> Response {
    match failure {
        Failure::RateLimited { retry_after_s } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests per min. Please try again later.",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            );
            if let Some(s) = retry_after_s {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().unwrap());
            }
            r.headers_mut()
                .insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
            r
        }
        Failure::QuotaExceeded => error(
            StatusCode::TOO_MANY_REQUESTS,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            None,
            Some("insufficient_quota"),
        ),
        Failure::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        Failure::Hang => {
            let (_guard, _) = control.enter();
            std::future::pending::<()>().await;
            unreachable!()
        }
        Failure::GarbageAudio => ([(header::CONTENT_TYPE, "audio/mpeg")], GARBAGE).into_response(),
        Failure::EchoCredentials => unreachable!("answered with the request's headers"),
    }
}

async fn synthesize(control: &Control, body: &Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return invalid("We could not parse the JSON body of your request.", "body");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    let Some(model) = text("model") else {
        return invalid("you must provide a model parameter", "model");
    };
    let Some(input) = text("input") else {
        return invalid("Missing required parameter: 'input'.", "input");
    };
    let Some(voice) = text("voice") else {
        return invalid("Missing required parameter: 'voice'.", "voice");
    };
    if input.chars().count() > MAX_INPUT_CHARS {
        return invalid(
            &format!("String should have at most {MAX_INPUT_CHARS} characters"),
            "input",
        );
    }
    if !VOICES.contains(&voice) {
        return invalid(&format!("Input should be {}", VOICES.join(", ")), "voice");
    }
    if model.starts_with("tts-1") && req.get("instructions").is_some() {
        return invalid(
            "instructions are not supported for this model",
            "instructions",
        );
    }
    if model.starts_with("tts-1") && text("stream_format") == Some("sse") {
        return invalid(
            "stream_format 'sse' is not supported for this model",
            "stream_format",
        );
    }
    if let Some(speed) = req.get("speed") {
        match speed.as_f64() {
            Some(s) if (0.25..=4.0).contains(&s) => {}
            _ => return invalid("speed must be between 0.25 and 4.0", "speed"),
        }
    }
    let (_guard, _) = control.enter();
    control.work().await;
    let ms = speech_ms(input);
    let (content_type, audio) = match text("response_format").unwrap_or("mp3") {
        "mp3" => ("audio/mpeg", mp3(ms)),
        "wav" => ("audio/wav", wav(ms, 24_000)),
        "pcm" => ("audio/pcm", pcm(ms, 24_000)),
        "flac" => ("audio/flac", flac(ms)),
        "opus" => ("audio/ogg", opus(ms)),
        other => {
            return invalid(
                &format!("response_format '{other}' is not supported by this fake"),
                "response_format",
            );
        }
    };
    ([(header::CONTENT_TYPE, content_type)], audio).into_response()
}

/// The tone as FLAC, as OpenAI's `flac`.
fn flac(ms: u32) -> Vec<u8> {
    let tone = aimake::audio::decode(&wav(ms, 24_000), aimake::audio::Format::Wav).unwrap();
    aimake::audio::encode_flac(&tone).unwrap()
}

/// The tone as Opus in Ogg, as OpenAI's `opus`.
fn opus(ms: u32) -> Vec<u8> {
    let tone = aimake::audio::decode(&wav(ms, 24_000), aimake::audio::Format::Wav).unwrap();
    aimake::audio::encode_opus(&tone, 32).unwrap()
}

/// OpenAI's upload limit, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 26_214_400;
const TRANSCRIPTION_MODELS: &[&str] = &[
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
];
const UPLOAD_FORMATS: &[&str] = &[
    "flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm",
];

#[derive(Clone, Copy, PartialEq)]
enum Task {
    Transcribe,
    Translate,
}

async fn transcriptions(State(control): State<Arc<Control>>, request: Request) -> Response {
    listen(&control, Task::Transcribe, request).await
}

async fn translations(State(control): State<Arc<Control>>, request: Request) -> Response {
    listen(&control, Task::Translate, request).await
}

async fn listen(control: &Control, task: Task, request: Request) -> Response {
    let (parts, body) = read_request(request).await;
    control.record(&parts.method, &parts.uri, &parts.headers, &body);
    if let Some(refused) = unauthorized(&parts.headers) {
        return refused;
    }
    let mut response = match control.next_failure() {
        Some(Failure::EchoCredentials) => return echo_credentials(&parts.headers),
        Some(Failure::GarbageAudio) => {
            ([(header::CONTENT_TYPE, "text/html")], GARBAGE).into_response()
        }
        Some(failure) => return fail(control, failure).await,
        None => transcribe(control, task, parts, &body).await,
    };
    add_headers(&mut response);
    response
}

async fn transcribe(control: &Control, task: Task, parts: Parts, body: &Bytes) -> Response {
    if body.len() > MAX_UPLOAD_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Maximum content size limit ({MAX_UPLOAD_BYTES}) exceeded ({} bytes read)",
                body.len()
            ),
            "server_error",
            None,
            None,
        );
    }
    let upload = match read_upload(parts, body).await {
        Ok(upload) => upload,
        Err(reason) => {
            return invalid(&format!("Could not parse multipart form: {reason}"), "file");
        }
    };
    control.record_upload(&upload);
    let Some((file_name, _, audio)) = &upload.file else {
        return invalid("Missing required parameter: 'file'.", "file");
    };
    let Some(model) = upload.field("model") else {
        return invalid("you must provide a model parameter", "model");
    };
    let allowed: &[&str] = match task {
        Task::Transcribe => TRANSCRIPTION_MODELS,
        Task::Translate => &["whisper-1"],
    };
    if !allowed.contains(&model) {
        return invalid(
            &format!(
                "Invalid model {model}: this endpoint takes {}",
                allowed.join(", ")
            ),
            "model",
        );
    }
    let response_format = upload.field("response_format").unwrap_or("json");
    if !["json", "text", "srt", "verbose_json", "vtt"].contains(&response_format) {
        return invalid(
            &format!(
                "'{response_format}' is not one of ['json', 'text', 'srt', 'verbose_json', 'vtt']"
            ),
            "response_format",
        );
    }
    if model.starts_with("gpt-4o") && !["json", "text"].contains(&response_format) {
        return invalid(
            &format!(
                "response_format '{response_format}' is not compatible with model '{model}'. Use 'json' or 'text' instead."
            ),
            "response_format",
        );
    }
    let granularities = upload.all("timestamp_granularities[]");
    if !granularities.is_empty() && response_format != "verbose_json" {
        return invalid(
            "timestamp_granularities requires response_format=verbose_json",
            "timestamp_granularities",
        );
    }
    if let Some(g) = granularities
        .iter()
        .find(|g| !["word", "segment"].contains(g))
    {
        return invalid(
            &format!("'{g}' is not one of ['word', 'segment']"),
            "timestamp_granularities",
        );
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    if !extension
        .as_deref()
        .is_some_and(|e| UPLOAD_FORMATS.contains(&e))
    {
        return invalid(
            &format!("Invalid file format. Supported formats: {UPLOAD_FORMATS:?}"),
            "file",
        );
    }
    let Some(seconds) = audio_seconds(audio) else {
        return invalid("Audio file might be corrupted or unsupported", "file");
    };
    if let Some(t) = upload.field("temperature") {
        match t.parse::<f64>() {
            Ok(t) if (0.0..=1.0).contains(&t) => {}
            _ => return invalid("temperature must be between 0 and 1", "temperature"),
        }
    }
    let (_guard, _) = control.enter();
    control.work().await;
    let chinese = task == Task::Transcribe && upload.field("language") == Some("zh");
    let words = heard(seconds, chinese);
    let text = heard_text(&words, chinese);
    let segments = sentences(&words, chinese);
    match response_format {
        "json" => axum::Json(json!({
            "text": text,
            "usage": {"type": "duration", "seconds": seconds.ceil() as u64},
        }))
        .into_response(),
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        "srt" | "vtt" => {
            let vtt = response_format == "vtt";
            let stamp = |t: f64| {
                let ms = (t * 1000.0).round() as u64;
                let sep = if vtt { '.' } else { ',' };
                format!(
                    "{:02}:{:02}:{:02}{sep}{:03}",
                    ms / 3_600_000,
                    ms / 60_000 % 60,
                    ms / 1000 % 60,
                    ms % 1000
                )
            };
            let mut out = if vtt {
                "WEBVTT\n\n".to_string()
            } else {
                String::new()
            };
            for (i, (start, end, text)) in segments.iter().enumerate() {
                if !vtt {
                    out.push_str(&format!("{}\n", i + 1));
                }
                out.push_str(&format!(
                    "{} --> {}\n{text}\n\n",
                    stamp(*start),
                    stamp(*end)
                ));
            }
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response()
        }
        _ => {
            let mut answer = json!({
                "task": if task == Task::Transcribe { "transcribe" } else { "translate" },
                "language": if chinese { "chinese" } else { "english" },
                "duration": seconds,
                "text": text,
            });
            // Segments come unless only words were asked for.
            if granularities.is_empty() || granularities.contains(&"segment") {
                answer["segments"] = segments
                    .iter()
                    .enumerate()
                    .map(|(id, (start, end, text))| {
                        json!({
                            "id": id, "seek": 0, "start": start, "end": end,
                            "text": format!(" {text}"), "tokens": [50364, 1234],
                            "temperature": 0.0, "avg_logprob": -0.2,
                            "compression_ratio": 1.2, "no_speech_prob": 0.01,
                        })
                    })
                    .collect();
            }
            if granularities.contains(&"word") {
                answer["words"] = words
                    .iter()
                    .map(|w| json!({"word": w.word, "start": w.start, "end": w.end}))
                    .collect();
            }
            axum::Json(answer).into_response()
        }
    }
}
