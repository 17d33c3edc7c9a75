//! The OpenAPI 3.1 description of every `/api` and `/v1` route, served at `/api/openapi.json`,
//! and its reference page at `/api/docs`.
//!
//! [`OPERATIONS`] is the one list of described operations: a test reads the routers of
//! `src/http/` and fails when a route is served without an entry here, or an entry describes
//! a route that is not served. The document is built once, at the first request.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    Required, ResponseBuilder,
};

use super::HttpState;

pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/openapi.json", get(document))
        .route("/api/docs", get(reference))
}

/// The document as served: serialized once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(serde_json::to_vec(&openapi()).expect("an OpenAPI document serializes"))
});

#[tracing::instrument(level = "debug", skip_all)]
async fn document() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        DOCUMENT.clone(),
    )
        .into_response()
}

/// The reference page: a page of the built web app that renders `/api/openapi.json`.
#[tracing::instrument(level = "debug", skip_all)]
async fn reference(headers: HeaderMap) -> Response {
    super::spa::page(REFERENCE_PAGE, &headers)
}

/// The reference page's file in the built web app (`web/api-docs.html`).
pub const REFERENCE_PAGE: &str = "api-docs.html";

/// Makes one schema of the document.
type MakeSchema = fn() -> RefOr<Schema>;

/// Query parameters: name, schema and description.
type QueryParams = &'static [(&'static str, MakeSchema, &'static str)];

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq)]
enum Who {
    /// No credentials needed.
    Anyone,
    /// A signed-in user: session cookie or API token.
    User,
    /// An admin: session cookie or API token.
    Admin,
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// JSON, required.
    Json(MakeSchema),
    /// JSON that may be left out (no body, or an empty one).
    OptionalJson(MakeSchema),
    /// `multipart/form-data` with these fields.
    Multipart(MakeSchema),
    /// Multipart as above, or JSON as the second schema.
    MultipartOrJson(MakeSchema, MakeSchema),
    /// Raw bytes of one of these media types.
    Bytes(&'static [&'static str]),
}

/// One successful answer.
#[derive(Clone, Copy)]
enum Reply {
    /// JSON of the schema.
    Json(&'static str, &'static str, MakeSchema),
    /// No body.
    Empty(&'static str, &'static str),
    /// Bytes of one of these media types.
    Media(&'static str, &'static str, &'static [&'static str]),
}

/// A stored file's answer with `storage.presign` (a GET of a finished file).
const PRESIGNED: Reply = Reply::Empty(
    "302",
    "With `storage.presign`: `Location` is a presigned URL of the bucket, which serves the bytes",
);

/// One described operation.
struct Operation {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    who: Who,
    /// Query parameters: name, schema and description.
    query: QueryParams,
    body: Body,
    replies: &'static [Reply],
}

const fn op(
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    who: Who,
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        who,
        query: &[],
        body: Body::None,
        replies: &[],
    }
}

impl Operation {
    const fn query(mut self, query: QueryParams) -> Self {
        self.query = query;
        self
    }

    const fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    const fn replies(mut self, replies: &'static [Reply]) -> Self {
        self.replies = replies;
        self
    }
}

use HttpMethod::{Delete, Get, Patch, Post, Put};
use Who::{Admin, Anyone, User};

const PAGE: QueryParams = &[
    ("limit", int, "Items per page, 1-100 (default 20)"),
    ("cursor", string, "`next_cursor` of the previous page"),
];
const RANGE: QueryParams = &[
    (
        "from",
        date,
        "First day, YYYY-MM-DD (default 29 days before `to`)",
    ),
    ("to", date, "Last day, YYYY-MM-DD (default today)"),
];
const AUDIO_TYPES: &[&str] = &["audio/mpeg", "audio/wav"];
/// What an uploaded recording is served as: the container it was sent in.
const RECORDING_TYPES: &[&str] = &[
    "audio/mpeg",
    "audio/wav",
    "audio/flac",
    "audio/ogg",
    "audio/mp4",
    "audio/webm",
    "application/octet-stream",
];
const NO_CONTENT: &[Reply] = &[Reply::Empty("204", "Done")];

/// Every `/api` and `/v1` operation the server answers.
static OPERATIONS: &[Operation] = &[
    // Health is outside /api; the description lives with the API it belongs to.
    op(Get, "/api/openapi.json", "meta", "This OpenAPI document", Anyone)
        .replies(&[Reply::Json("200", "The document", object)]),
    op(Get, "/api/docs", "meta", "The API reference page", Anyone)
        .replies(&[Reply::Media("200", "An HTML page", &["text/html"])]),
    // Accounts
    op(Get, "/api/setup", "accounts", "Whether first-run setup is needed", Anyone)
        .replies(&[Reply::Json("200", "Setup state", setup_state)]),
    op(Post, "/api/setup", "accounts", "Create the first admin with the setup token", Anyone)
        .body(Body::Json(setup_body))
        .replies(&[Reply::Json("201", "The new admin, signed in", user_ref)]),
    op(Post, "/api/auth/register", "accounts", "Register an account", Anyone)
        .body(Body::Json(register_body))
        .replies(&[Reply::Json("201", "The new user, signed in", user_ref)]),
    op(Post, "/api/auth/login", "accounts", "Sign in", Anyone)
        .body(Body::Json(login_body))
        .replies(&[Reply::Json("200", "The user; sets the session cookie", user_ref)]),
    op(Post, "/api/auth/logout", "accounts", "Sign out", Anyone).replies(NO_CONTENT),
    op(Get, "/api/me", "accounts", "The signed-in user", User)
        .replies(&[Reply::Json("200", "The user", user_ref)]),
    op(Patch, "/api/me", "accounts", "Change the display name", User)
        .body(Body::Json(profile_body))
        .replies(&[Reply::Json("200", "The user", user_ref)]),
    op(Put, "/api/me/password", "accounts", "Change the password", User)
        .body(Body::Json(password_body))
        .replies(NO_CONTENT),
    op(Get, "/api/tokens", "accounts", "List API tokens", User)
        .query(PAGE)
        .replies(&[Reply::Json("200", "A page of tokens", token_page)]),
    op(Post, "/api/tokens", "accounts", "Create an API token", User)
        .body(Body::Json(name_body))
        .replies(&[Reply::Json("201", "The token, shown this once", new_token)]),
    op(Delete, "/api/tokens/{id}", "accounts", "Revoke an API token", User).replies(NO_CONTENT),
    // Administration
    op(Get, "/api/admin/users", "admin", "List users", Admin)
        .query(&[
            ("limit", int, "Items per page, 1-100 (default 20)"),
            ("cursor", string, "`next_cursor` of the previous page"),
            ("q", string, "Part of an email"),
        ])
        .replies(&[Reply::Json("200", "A page of user summaries", user_summary_page)]),
    op(Patch, "/api/admin/users/{id}", "admin", "Change a user's role, state or quota", Admin)
        .body(Body::Json(user_patch))
        .replies(&[Reply::Json("200", "The user summary", user_summary_ref)]),
    op(Get, "/api/admin/invites", "admin", "List invites", Admin)
        .query(PAGE)
        .replies(&[Reply::Json("200", "A page of invites", invite_page)]),
    op(Post, "/api/admin/invites", "admin", "Create an invite", Admin)
        .body(Body::OptionalJson(invite_body))
        .replies(&[Reply::Json("201", "The invite", invite_ref)]),
    op(Delete, "/api/admin/invites/{code}", "admin", "Delete an invite", Admin)
        .replies(NO_CONTENT),
    op(Get, "/api/admin/usage", "admin", "Usage of all users", Admin)
        .query(RANGE)
        .replies(&[Reply::Json("200", "Usage per day, service and source, with totals", object)]),
    op(Get, "/api/admin/backups", "admin", "List backups", Admin)
        .replies(&[Reply::Json("200", "`{items}`, newest first", object)]),
    op(Post, "/api/admin/backups", "admin", "Start a backup", Admin)
        .replies(&[Reply::Json("202", "`{name}` of the backup started", object)]),
    op(Get, "/api/admin/system", "admin", "Version, uptime, database and job counts", Admin)
        .replies(&[Reply::Json("200", "The system summary", object)]),
    op(Get, "/api/admin/alerts", "admin", "Alerts firing now and a page of all alerts", Admin)
        .query(PAGE)
        .replies(&[Reply::Json("200", "`{active, items, next_cursor}`", object)]),
    op(Get, "/api/admin/notifiers", "admin", "The alert notifiers and their deliveries", Admin)
        .replies(&[Reply::Json("200", "`{notifiers}`", object)]),
    op(Post, "/api/admin/alerts/test", "admin", "Send a test alert", Admin)
        .body(Body::OptionalJson(notifier_body))
        .replies(&[
            Reply::Json("200", "`{results}` once every delivery finished", object),
            Reply::Json("202", "`{results: null, pending: true}` while deliveries go on", object),
        ]),
    op(Get, "/api/admin/metrics/series", "admin", "The minute series of the server's metrics", Admin)
        .query(&[("range", series_range, "`1h` (default) or `24h`")])
        .replies(&[Reply::Json("200", "The minute series", object)]),
    op(Get, "/api/admin/models", "admin", "The local models and their downloads", Admin)
        .replies(&[Reply::Json("200", "`{dir, disk_used_bytes, models}`", object)]),
    op(Post, "/api/admin/models/{name}/pull", "admin", "Download a local model", Admin)
        .replies(&[Reply::Json("202", "The model's row, its pull running", object)]),
    op(Delete, "/api/admin/models/{name}", "admin", "Delete a local model's files", Admin)
        .replies(NO_CONTENT),
    op(Post, "/api/admin/selftest", "admin", "Speak a sentence with each local voice and hear it with Whisper", Admin)
        .replies(&[Reply::Json(
            "200",
            "`{sentence, model, voices: [{voice, heard, word_error_rate, audio_ms, elapsed_ms, error}]}`",
            object,
        )]),
    // Audios, voices, providers and usage
    op(Post, "/api/audios", "audios", "Synthesize a text", User)
        .body(Body::Json(create_audio))
        .replies(&[Reply::Json("202", "The audio, queued", audio_ref)]),
    op(Get, "/api/audios", "audios", "List and search the library", User)
        .query(&[
            ("kind", string, "`tts`, `podcast` or `upload`"),
            ("status", string, "`queued`, `running`, `succeeded`, `failed` or `canceled`"),
            ("q", string, "A part of the title, text or transcript"),
            ("limit", int, "Items per page, 1-100 (default 20)"),
            ("cursor", string, "`next_cursor` of the previous page"),
        ])
        .replies(&[Reply::Json("200", "A page of audios", audio_page)]),
    op(Get, "/api/audios/{id}", "audios", "One audio", User)
        .replies(&[Reply::Json("200", "The audio", audio_ref)]),
    op(Patch, "/api/audios/{id}", "audios", "Rename an audio", User)
        .body(Body::Json(title_body))
        .replies(&[Reply::Json("200", "The audio", audio_ref)]),
    op(Delete, "/api/audios/{id}", "audios", "Delete an audio", User).replies(NO_CONTENT),
    op(Post, "/api/audios/{id}/retry", "audios", "Synthesize a failed or canceled audio again", User)
        .replies(&[Reply::Json("202", "The audio, queued", audio_ref)]),
    op(Get, "/api/audios/{id}/events", "audios", "Status changes as Server-Sent Events", User)
        .replies(&[Reply::Media("200", "`event: status` events", &["text/event-stream"])]),
    op(Get, "/api/audios/{id}/file", "audios", "The audio file (ranges, conditional requests)", User)
        .query(&[("download", string, "Any value but `0` or `false`: an attachment")])
        .replies(&[
            Reply::Media("200", "The file", AUDIO_TYPES),
            Reply::Media("206", "The requested range", AUDIO_TYPES),
            PRESIGNED,
        ]),
    op(Get, "/api/audios/{id}/stream", "audios", "The audio while it is made, then its file", User)
        .replies(&[Reply::Media("200", "Progressive MP3", AUDIO_TYPES), PRESIGNED]),
    op(Get, "/api/audios/{id}/peaks", "audios", "The waveform's peaks", User)
        .replies(&[Reply::Json("200", "`{sample_rate, duration_ms, peaks}`", object)]),
    op(Post, "/api/audios/{id}/share", "audios", "A signed link to the file", User)
        .body(Body::OptionalJson(expiry_body))
        .replies(&[Reply::Json("200", "`{url, expires_at}`", object)]),
    op(Get, "/api/voices", "audios", "The voices that can speak", User)
        .query(&[
            ("provider", string, "Only this provider's voices"),
            ("language", string, "Only voices of this language (`en` matches `en-US`)"),
        ])
        .replies(&[Reply::Json("200", "The voices", array)]),
    op(Post, "/api/voices/{id}/preview", "audios", "A short sample of a voice", User)
        .replies(&[Reply::Media("200", "The sample", AUDIO_TYPES)]),
    op(Get, "/api/providers", "audios", "The speech and speech recognition providers and their state", User)
        .replies(&[Reply::Json("200", "The providers", array)]),
    op(Get, "/api/usage", "audios", "The caller's usage per day, service and source", User)
        .query(RANGE)
        .replies(&[Reply::Json("200", "Usage rows", array)]),
    op(Post, "/api/client-errors", "meta", "Report an error of the web app", Anyone)
        .body(Body::Json(client_error))
        .replies(NO_CONTENT),
    // Transcripts
    op(Post, "/api/transcriptions", "transcriptions", "Transcribe a recording or a library audio", User)
        .body(Body::MultipartOrJson(transcription_upload, transcription_of_audio))
        .replies(&[Reply::Json("202", "The transcript, queued", object)]),
    op(Get, "/api/transcriptions", "transcriptions", "List and search transcripts", User)
        .query(&[
            ("q", string, "A part of the text"),
            ("audio_id", string, "Only the transcripts of this library audio (none for someone else's)"),
            ("limit", int, "Items per page, 1-100 (default 20)"),
            ("cursor", string, "`next_cursor` of the previous page"),
        ])
        .replies(&[Reply::Json("200", "A page of transcripts", page)]),
    op(Get, "/api/transcriptions/{id}", "transcriptions", "One transcript, or its file (`{id}.srt`, `?format=`)", User)
        .query(&[("format", string, "`json`, `srt`, `vtt` or `txt`: the transcript as a file")])
        .replies(&[
            Reply::Json("200", "The transcript object", object),
            Reply::Media("200", "The transcript as a file", &["application/x-subrip", "text/vtt", "text/plain"]),
        ]),
    op(Get, "/api/transcriptions/{id}/recording", "transcriptions", "The uploaded recording (ranges, conditional requests)", User)
        .replies(&[
            Reply::Media("200", "The recording as sent", RECORDING_TYPES),
            Reply::Media("206", "The requested range", RECORDING_TYPES),
            PRESIGNED,
        ]),
    op(Delete, "/api/transcriptions/{id}", "transcriptions", "Delete a transcript", User)
        .replies(NO_CONTENT),
    // Podcasts
    op(Post, "/api/podcasts", "podcasts", "Create a show", User)
        .body(Body::Json(podcast_fields))
        .replies(&[Reply::Json("201", "The show", podcast_ref)]),
    op(Get, "/api/podcasts", "podcasts", "List shows", User)
        .query(PAGE)
        .replies(&[Reply::Json("200", "A page of shows", podcast_page)]),
    op(Get, "/api/podcasts/{id}", "podcasts", "One show", User)
        .replies(&[Reply::Json("200", "The show", podcast_ref)]),
    op(Patch, "/api/podcasts/{id}", "podcasts", "Change a show", User)
        .body(Body::Json(podcast_fields))
        .replies(&[Reply::Json("200", "The show", podcast_ref)]),
    op(Delete, "/api/podcasts/{id}", "podcasts", "Delete a show and its episodes", User)
        .replies(NO_CONTENT),
    op(Put, "/api/podcasts/{id}/cover", "podcasts", "Set the cover image", User)
        .body(Body::Bytes(&["image/jpeg", "image/png"]))
        .replies(&[Reply::Json("200", "The show", podcast_ref)]),
    op(Get, "/api/podcasts/{id}/cover", "podcasts", "The cover image", User)
        .replies(&[Reply::Media("200", "The image", &["image/jpeg", "image/png"])]),
    op(Delete, "/api/podcasts/{id}/cover", "podcasts", "Remove the cover image", User)
        .replies(NO_CONTENT),
    op(Post, "/api/podcasts/{id}/scripts", "podcasts", "Write or parse a script", User)
        .body(Body::Json(script_body))
        .replies(&[Reply::Json("200", "`{lines, notes}`", object)]),
    op(Post, "/api/podcasts/{id}/feed-token", "podcasts", "A new secret feed link", User)
        .replies(&[Reply::Json("200", "`{feed_url}`", object)]),
    op(Post, "/api/podcasts/{id}/episodes", "podcasts", "Render an episode", User)
        .body(Body::Json(episode_body))
        .replies(&[Reply::Json("202", "The episode, its audio queued", object)]),
    op(Get, "/api/podcasts/{id}/episodes", "podcasts", "List a show's episodes", User)
        .query(PAGE)
        .replies(&[Reply::Json("200", "A page of episodes", page)]),
    op(Get, "/api/podcasts/{id}/episodes/{eid}", "podcasts", "One episode", User)
        .replies(&[Reply::Json("200", "The episode", object)]),
    op(Delete, "/api/podcasts/{id}/episodes/{eid}", "podcasts", "Delete an episode", User)
        .replies(NO_CONTENT),
    op(Get, "/api/podcasts/{id}/episodes/{eid}/{file}", "podcasts", "Subtitles, transcript or chapters of an episode", User)
        .replies(&[Reply::Media("200", "`subtitles.vtt`, `transcript.vtt`, `subtitles.srt` or `chapters.json`", &["text/vtt", "application/x-subrip", "application/json+chapters"])]),
    // OpenAI-compatible
    op(Post, "/v1/audio/speech", "openai", "Speak a text (OpenAI's speech API)", User)
        .body(Body::Json(speech_body))
        .replies(&[
            Reply::Media("200", "The audio, streamed; or `speech.audio.delta` events with `stream_format: sse`", &["audio/mpeg", "audio/ogg", "audio/flac", "audio/wav", "audio/pcm", "text/event-stream"]),
        ]),
    op(Get, "/v1/models", "openai", "The model names", User)
        .replies(&[Reply::Json("200", "`{object: \"list\", data}`", object)]),
    op(Get, "/v1/models/{id}", "openai", "One model name", User)
        .replies(&[Reply::Json("200", "`{id, object: \"model\", created, owned_by}`", object)]),
    op(Get, "/v1/audio/models", "openai", "The model names, as Open WebUI asks for them", Anyone)
        .replies(&[Reply::Json("200", "`{models: [{id, name}]}`", object)]),
    op(Get, "/v1/audio/voices", "openai", "The voices, as Open WebUI asks for them", Anyone)
        .replies(&[Reply::Json("200", "`{voices: [{id, name}]}`", object)]),
    op(Post, "/v1/audio/transcriptions", "openai", "Transcribe a recording (OpenAI's transcription API)", User)
        .body(Body::Multipart(openai_transcription))
        .replies(&[
            Reply::Media("200", "`json`/`verbose_json`, `text`, `srt` or `vtt` by `response_format`; `transcript.text.delta` events with `stream=true`", &["application/json", "text/plain", "text/event-stream"]),
        ]),
    op(Post, "/v1/audio/translations", "openai", "Translate a recording into English text", User)
        .body(Body::Multipart(openai_transcription))
        .replies(&[
            Reply::Media("200", "`json`/`verbose_json`, `text`, `srt` or `vtt` by `response_format`", &["application/json", "text/plain"]),
        ]),
];

/// The document, built from [`OPERATIONS`].
pub fn openapi() -> OpenApi {
    let mut paths = Paths::new();
    for operation in OPERATIONS {
        paths.add_path_operation(
            operation.path,
            vec![operation.method.clone()],
            build(operation),
        );
    }
    let cookie = SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
        "aimake_session",
        "The session cookie set by setup, register and login. A write (any method but \
         GET, HEAD, OPTIONS, TRACE) with it must come from the public URL's origin or a \
         configured CORS origin (`Origin` or `Referer`), else 403 `csrf_rejected`.",
    )));
    let bearer = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("amk_…")
            .description(Some(
                "An API token from `POST /api/tokens`; the key of OpenAI clients on `/v1`.",
            ))
            .build(),
    );
    let components = ComponentsBuilder::new()
        .schema("Error", error_schema())
        .schema("OpenAiError", openai_error_schema())
        .schema("User", user())
        .schema("Audio", audio())
        .schema("Podcast", podcast())
        .schema("UserSummary", user_summary())
        .schema("Invite", invite())
        .security_scheme("session", cookie)
        .security_scheme("bearer", bearer)
        .build();
    let tags = [
        ("meta", "This description and the web app's reports"),
        ("accounts", "Setup, sign-in, the user and API tokens"),
        ("admin", "Administration (admins only)"),
        (
            "audios",
            "Speech synthesis, the library, voices, providers and usage",
        ),
        ("transcriptions", "Transcripts of recordings"),
        ("podcasts", "Shows, scripts and episodes"),
        (
            "openai",
            "The OpenAI-compatible audio API; errors in OpenAI's envelope",
        ),
    ]
    .map(|(name, description)| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("aimake")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of aimake, a self-hosted AI audio studio. Errors on `/api` \
                     are `{\"error\": {\"code\", \"message\", \"details\"}}`; on `/v1` they \
                     take OpenAI's envelope `{\"error\": {\"message\", \"type\", \"param\", \
                     \"code\"}}`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags))
        .build()
}

fn build(operation: &Operation) -> utoipa::openapi::path::Operation {
    let id = operation_id(&operation.method, operation.path);
    let mut builder = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(operation.summary))
        .tag(operation.tag);
    for name in path_parameters(operation.path) {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string())),
        );
    }
    for (name, schema, description) in operation.query {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(schema())),
        );
    }
    let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
    let body = match operation.body {
        Body::None => None,
        Body::Json(schema) => Some(
            RequestBodyBuilder::new()
                .content("application/json", json(schema()))
                .required(Some(Required::True)),
        ),
        Body::OptionalJson(schema) => Some(
            RequestBodyBuilder::new()
                .content("application/json", json(schema()))
                .required(Some(Required::False)),
        ),
        Body::Multipart(schema) => Some(
            RequestBodyBuilder::new()
                .content("multipart/form-data", json(schema()))
                .required(Some(Required::True)),
        ),
        Body::MultipartOrJson(form, body) => Some(
            RequestBodyBuilder::new()
                .content("multipart/form-data", json(form()))
                .content("application/json", json(body()))
                .required(Some(Required::True)),
        ),
        Body::Bytes(types) => {
            let mut builder = RequestBodyBuilder::new().required(Some(Required::True));
            for media in types {
                builder = builder.content(*media, json(binary()));
            }
            Some(builder)
        }
    };
    if let Some(body) = body {
        builder = builder.request_body(Some(body.build()));
    }
    // Replies of one status share a response with several media types.
    let mut statuses: Vec<(&str, &str, Contents)> = Vec::new();
    for reply in operation.replies {
        let (status, description, contents) = match *reply {
            Reply::Json(status, description, schema) => {
                (status, description, vec![("application/json", schema())])
            }
            Reply::Empty(status, description) => (status, description, Vec::new()),
            Reply::Media(status, description, types) => (
                status,
                description,
                types.iter().map(|media| (*media, binary())).collect(),
            ),
        };
        match statuses.iter_mut().find(|(s, _, _)| *s == status) {
            Some((_, _, existing)) => existing.extend(contents),
            None => statuses.push((status, description, contents)),
        }
    }
    for (status, description, contents) in statuses {
        let mut response = ResponseBuilder::new().description(description);
        for (media, schema) in contents {
            response = response.content(media, json(schema));
        }
        builder = builder.response(status, response.build());
    }
    let error = if super::is_openai_path(operation.path) {
        "OpenAiError"
    } else {
        "Error"
    };
    builder = builder.response(
        "default",
        ResponseBuilder::new()
            .description("An error")
            .content(
                "application/json",
                json(RefOr::Ref(Ref::from_schema_name(error))),
            )
            .build(),
    );
    if operation.who != Anyone {
        builder = builder.securities(Some([
            SecurityRequirement::new("session", Vec::<String>::new()),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]));
    }
    if operation.who == Admin {
        builder = builder.description(Some("Admins only: 403 `forbidden` for other users."));
    }
    builder.build()
}

/// `get /api/audios/{id}` → `get_api_audios_id`.
fn operation_id(method: &HttpMethod, path: &str) -> String {
    let method = match method {
        Get => "get",
        Post => "post",
        Put => "put",
        Patch => "patch",
        Delete => "delete",
        _ => "other",
    };
    let mut id = String::from(method);
    for part in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

/// The `{name}` segments of a path.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

// Schemas.

/// A response's bodies: media type and schema.
type Contents = Vec<(&'static str, RefOr<Schema>)>;

fn typed(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(ty)
}

fn string() -> RefOr<Schema> {
    typed(Type::String).into()
}

fn nullable_string() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .into()
}

fn int() -> RefOr<Schema> {
    typed(Type::Integer).into()
}

fn number() -> RefOr<Schema> {
    typed(Type::Number).into()
}

fn boolean() -> RefOr<Schema> {
    typed(Type::Boolean).into()
}

fn date() -> RefOr<Schema> {
    typed(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        )))
        .into()
}

fn binary() -> RefOr<Schema> {
    typed(Type::String)
        .content_media_type("application/octet-stream")
        .into()
}

fn object() -> RefOr<Schema> {
    typed(Type::Object).into()
}

fn array() -> RefOr<Schema> {
    ArrayBuilder::new().items(object()).into()
}

fn series_range() -> RefOr<Schema> {
    typed(Type::String).enum_values(Some(["1h", "24h"])).into()
}

/// An object with these properties; `required` names those that must be present.
fn fields(properties: &[(&str, RefOr<Schema>)], required: &[&str]) -> RefOr<Schema> {
    let mut builder = typed(Type::Object);
    for (name, schema) in properties {
        builder = builder.property(*name, schema.clone());
    }
    for name in required {
        builder = builder.required(*name);
    }
    builder.into()
}

/// A page of a list: `{items, next_cursor}`.
fn page_of(item: RefOr<Schema>) -> RefOr<Schema> {
    fields(
        &[
            ("items", ArrayBuilder::new().items(item).into()),
            ("next_cursor", nullable_string()),
        ],
        &["items", "next_cursor"],
    )
}

fn page() -> RefOr<Schema> {
    page_of(object())
}

fn error_schema() -> RefOr<Schema> {
    fields(
        &[(
            "error",
            fields(
                &[
                    ("code", string()),
                    ("message", string()),
                    ("details", object()),
                ],
                &["code", "message"],
            ),
        )],
        &["error"],
    )
}

fn openai_error_schema() -> RefOr<Schema> {
    fields(
        &[(
            "error",
            fields(
                &[
                    ("message", string()),
                    ("type", string()),
                    ("param", nullable_string()),
                    ("code", nullable_string()),
                ],
                &["message", "type", "param", "code"],
            ),
        )],
        &["error"],
    )
}

fn user() -> RefOr<Schema> {
    fields(
        &[
            ("id", string()),
            ("email", string()),
            ("display_name", nullable_string()),
            (
                "role",
                typed(Type::String)
                    .enum_values(Some(["user", "admin"]))
                    .into(),
            ),
            ("created_at", string()),
            ("quota", object()),
        ],
        &["id", "email", "role", "created_at"],
    )
}

fn user_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("User"))
}

fn audio() -> RefOr<Schema> {
    fields(
        &[
            ("id", string()),
            ("kind", string()),
            ("title", string()),
            ("status", string()),
            ("progress", number()),
            // The newest transcript of the audio, or null.
            (
                "transcript",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                    .property("id", string())
                    .property("status", string())
                    .required("id")
                    .required("status")
                    .into(),
            ),
            ("created_at", string()),
        ],
        &["id", "status"],
    )
}

fn audio_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Audio"))
}

fn audio_page() -> RefOr<Schema> {
    page_of(audio_ref())
}

fn setup_state() -> RefOr<Schema> {
    fields(
        &[
            ("needed", boolean()),
            (
                "registration",
                typed(Type::String)
                    .enum_values(Some(["open", "invite", "closed"]))
                    .into(),
            ),
        ],
        &["needed", "registration"],
    )
}

fn setup_body() -> RefOr<Schema> {
    fields(
        &[
            ("setup_token", string()),
            ("email", string()),
            ("password", string()),
            ("display_name", string()),
        ],
        &["setup_token", "email", "password"],
    )
}

fn register_body() -> RefOr<Schema> {
    fields(
        &[
            ("email", string()),
            ("password", string()),
            ("display_name", string()),
            ("invite_code", string()),
        ],
        &["email", "password"],
    )
}

fn login_body() -> RefOr<Schema> {
    fields(
        &[("email", string()), ("password", string())],
        &["email", "password"],
    )
}

fn profile_body() -> RefOr<Schema> {
    fields(&[("display_name", nullable_string())], &[])
}

fn password_body() -> RefOr<Schema> {
    fields(
        &[("current_password", string()), ("new_password", string())],
        &["current_password", "new_password"],
    )
}

fn name_body() -> RefOr<Schema> {
    fields(&[("name", string())], &["name"])
}

fn title_body() -> RefOr<Schema> {
    fields(&[("title", string())], &["title"])
}

fn token_page() -> RefOr<Schema> {
    page_of(fields(
        &[
            ("id", string()),
            ("name", string()),
            ("created_at", string()),
            ("last_used_at", nullable_string()),
        ],
        &["id", "name", "created_at", "last_used_at"],
    ))
}

fn new_token() -> RefOr<Schema> {
    fields(
        &[
            ("id", string()),
            ("name", string()),
            ("token", string()),
            ("created_at", string()),
        ],
        &["id", "name", "token", "created_at"],
    )
}

fn user_patch() -> RefOr<Schema> {
    fields(
        &[
            (
                "role",
                typed(Type::String)
                    .enum_values(Some(["user", "admin"]))
                    .into(),
            ),
            ("disabled", boolean()),
            (
                "quota_chars_per_month",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
                    .into(),
            ),
        ],
        &[],
    )
}

fn invite_body() -> RefOr<Schema> {
    fields(&[("expires_in_s", int())], &[])
}

fn expiry_body() -> RefOr<Schema> {
    fields(&[("expires_in_s", int())], &[])
}

fn notifier_body() -> RefOr<Schema> {
    fields(&[("notifier", string())], &[])
}

fn create_audio() -> RefOr<Schema> {
    fields(
        &[
            ("text", string()),
            ("voice", string()),
            ("title", string()),
            ("format", string()),
            ("speed", number()),
        ],
        &["text"],
    )
}

fn client_error() -> RefOr<Schema> {
    fields(
        &[
            ("message", string()),
            ("path", string()),
            ("stack", string()),
            ("user_agent", string()),
            ("release", string()),
        ],
        &["message", "path"],
    )
}

fn transcription_upload() -> RefOr<Schema> {
    fields(
        &[
            ("file", binary()),
            ("provider", string()),
            ("model", string()),
            ("language", string()),
            ("speakers", boolean()),
        ],
        &["file"],
    )
}

fn transcription_of_audio() -> RefOr<Schema> {
    fields(
        &[
            ("audio_id", string()),
            ("provider", string()),
            ("model", string()),
            ("language", string()),
            ("speakers", boolean()),
        ],
        &["audio_id"],
    )
}

fn podcast_fields() -> RefOr<Schema> {
    fields(
        &[
            ("title", string()),
            ("description", string()),
            ("language", nullable_string()),
            ("author", nullable_string()),
            ("category", nullable_string()),
            ("public", boolean()),
        ],
        &[],
    )
}

fn script_body() -> RefOr<Schema> {
    fields(
        &[
            ("source", object()),
            ("speakers", array()),
            ("minutes", int()),
            ("language", string()),
            ("style", string()),
        ],
        &["source", "speakers"],
    )
}

fn episode_body() -> RefOr<Schema> {
    fields(
        &[
            ("title", string()),
            ("lines", array()),
            ("speakers", array()),
            ("pause_ms", int()),
        ],
        &["title", "lines", "speakers"],
    )
}

fn speech_body() -> RefOr<Schema> {
    fields(
        &[
            ("model", string()),
            ("input", string()),
            ("voice", string()),
            ("instructions", string()),
            (
                "response_format",
                typed(Type::String)
                    .enum_values(Some(["mp3", "opus", "aac", "flac", "wav", "pcm"]))
                    .into(),
            ),
            ("speed", number()),
            (
                "stream_format",
                typed(Type::String)
                    .enum_values(Some(["audio", "sse"]))
                    .into(),
            ),
        ],
        &["model", "input", "voice"],
    )
}

fn openai_transcription() -> RefOr<Schema> {
    fields(
        &[
            ("file", binary()),
            ("model", string()),
            ("language", string()),
            ("prompt", string()),
            ("temperature", number()),
            (
                "response_format",
                typed(Type::String)
                    .enum_values(Some(["json", "text", "srt", "verbose_json", "vtt"]))
                    .into(),
            ),
            (
                "timestamp_granularities[]",
                ArrayBuilder::new()
                    .items(typed(Type::String).enum_values(Some(["word", "segment"])))
                    .into(),
            ),
            ("stream", boolean()),
        ],
        &["file", "model"],
    )
}

fn nullable(ty: Type) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([ty, Type::Null]))
        .into()
}

fn podcast() -> RefOr<Schema> {
    fields(
        &[
            ("id", string()),
            ("title", string()),
            ("description", string()),
            ("language", nullable_string()),
            ("author", nullable_string()),
            ("category", nullable_string()),
            ("cover_url", nullable_string()),
            ("public", boolean()),
            ("has_feed_token", boolean()),
            ("created_at", string()),
            ("updated_at", string()),
        ],
        &[
            "id",
            "title",
            "description",
            "language",
            "author",
            "category",
            "cover_url",
            "public",
            "has_feed_token",
            "created_at",
            "updated_at",
        ],
    )
}

fn podcast_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Podcast"))
}

fn podcast_page() -> RefOr<Schema> {
    page_of(podcast_ref())
}

fn user_summary() -> RefOr<Schema> {
    fields(
        &[
            ("id", string()),
            ("email", string()),
            ("display_name", nullable_string()),
            (
                "role",
                typed(Type::String)
                    .enum_values(Some(["user", "admin"]))
                    .into(),
            ),
            ("disabled", boolean()),
            ("quota_chars_per_month", nullable(Type::Integer)),
            ("created_at", string()),
            ("updated_at", string()),
        ],
        &[
            "id",
            "email",
            "display_name",
            "role",
            "disabled",
            "quota_chars_per_month",
            "created_at",
            "updated_at",
        ],
    )
}

fn user_summary_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("UserSummary"))
}

fn user_summary_page() -> RefOr<Schema> {
    page_of(user_summary_ref())
}

fn invite() -> RefOr<Schema> {
    fields(
        &[
            ("code", string()),
            (
                "status",
                typed(Type::String)
                    .enum_values(Some(["active", "used", "expired"]))
                    .into(),
            ),
            ("created_at", string()),
            ("expires_at", nullable_string()),
            ("used_at", nullable_string()),
            ("used_by", nullable_string()),
        ],
        &[
            "code",
            "status",
            "created_at",
            "expires_at",
            "used_at",
            "used_by",
        ],
    )
}

fn invite_ref() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Invite"))
}

fn invite_page() -> RefOr<Schema> {
    page_of(invite_ref())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// `(method, path)` of every `/api` and `/v1` route the routers of `src/http/` declare,
    /// read from their `.route(path, method(handler)…)` calls (test modules left out). The
    /// catch-alls that answer unknown paths with 404 are not routes of the API.
    fn served_routes() -> BTreeSet<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut routes = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let mut rest = source.split("#[cfg(test)]").next().unwrap();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .expect("a route call closes");
                let call = &rest[..end];
                let mut quoted = call.splitn(3, '"');
                let (Some(_), Some(route), Some(handlers)) =
                    (quoted.next(), quoted.next(), quoted.next())
                else {
                    panic!("{}: a route without a literal path: {call}", path.display());
                };
                let api = route.starts_with("/api/") || route.starts_with("/v1/");
                if !api || route.contains("{*") {
                    continue;
                }
                for method in METHODS {
                    let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                        i == 0 || {
                            let before = handlers.as_bytes()[i - 1];
                            !(before.is_ascii_alphanumeric() || before == b'_')
                        }
                    });
                    if called {
                        routes.insert((method.to_string(), route.to_string()));
                    }
                }
            }
        }
        routes
    }

    fn described() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(method).is_some() {
                    found.insert((method.to_string(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_api_route_the_routers_serve_is_described_and_nothing_else() {
        let served = served_routes();
        let described = described();
        // The reading of the routers found the routes it must find.
        assert!(served.contains(&("post".into(), "/v1/audio/speech".into())));
        assert!(served.contains(&("get".into(), "/api/openapi.json".into())));
        let undescribed: Vec<_> = served.difference(&described).collect();
        assert!(
            undescribed.is_empty(),
            "served but not in the OpenAPI document (add them to OPERATIONS in \
             src/http/openapi.rs): {undescribed:?}"
        );
        let unserved: Vec<_> = described.difference(&served).collect();
        assert!(
            unserved.is_empty(),
            "in the OpenAPI document but not served: {unserved:?}"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_every_path_parameter_is_declared() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap().to_string();
                assert!(ids.insert(id.clone()), "{method} {path}: {id} twice");
                let declared: BTreeSet<&str> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let named: BTreeSet<&str> = path_parameters(path).collect();
                assert_eq!(declared, named, "{method} {path}");
            }
        }
        assert_eq!(ids.len(), OPERATIONS.len());
    }

    #[test]
    fn errors_take_openais_envelope_on_v1_and_the_apps_shape_elsewhere() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let error = &operation["responses"]["default"]["content"]["application/json"]["schema"]
                    ["$ref"];
                let wanted = if path.starts_with("/v1/") {
                    "#/components/schemas/OpenAiError"
                } else {
                    "#/components/schemas/Error"
                };
                assert_eq!(error, wanted, "{method} {path}");
            }
        }
    }

    #[test]
    fn only_public_operations_go_without_credentials() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let public: BTreeSet<(&str, &str)> = [
            ("get", "/api/openapi.json"),
            ("get", "/api/docs"),
            ("get", "/api/setup"),
            ("post", "/api/setup"),
            ("post", "/api/auth/register"),
            ("post", "/api/auth/login"),
            ("post", "/api/auth/logout"),
            ("post", "/api/client-errors"),
            ("get", "/v1/audio/models"),
            ("get", "/v1/audio/voices"),
        ]
        .into();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let schemes: Vec<&str> = operation["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                    .collect();
                if public.contains(&(method.as_str(), path.as_str())) {
                    assert!(schemes.is_empty(), "{method} {path}");
                } else {
                    assert_eq!(schemes, ["session", "bearer"], "{method} {path}");
                }
            }
        }
    }
}
