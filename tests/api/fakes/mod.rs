//! Fake OpenAI, ElevenLabs and Tencent Cloud servers on 127.0.0.1:0, following shared providers.md:
//! they check keys and signatures, enforce input limits with the real error shapes, return real
//! audio, "hear" the audio they are sent (one word per half second of it), count requests, and
//! can be told to fail the next N requests in the ways real ones do.

// Shared by several test modules; not every module uses every helper.
#![allow(dead_code)]

pub mod alerts;
mod elevenlabs;
mod openai;
pub mod sentry;
mod tencent;

use std::collections::VecDeque;
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, Multipart};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;
pub use elevenlabs::FakeElevenLabs;
pub use openai::FakeOpenAi;
pub use sentry::FakeSentry;
pub use tencent::FakeTencent;
use tokio::task::JoinHandle;

/// How the next requests should fail. Each fake answers in its provider's own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// OpenAI 429 `rate_limit_exceeded`, ElevenLabs 429 `system_busy`, Tencent
    /// `RequestLimitExceeded`; `Retry-After` is sent when given (Tencent has none).
    RateLimited { retry_after_s: Option<u64> },
    /// HTTP 500 (Tencent: `InternalError` in a 200 body).
    ServerError,
    /// Never answers; the client has to time out.
    Hang,
    /// 200 with bytes that are not audio.
    GarbageAudio,
    /// The account is out of credit: OpenAI 429 `insufficient_quota`, ElevenLabs 401
    /// `quota_exceeded`, Tencent `UnsupportedOperation.PkgExhausted`.
    QuotaExceeded,
    /// A 400 (Tencent: `InvalidParameter`) whose message quotes the request's credentials,
    /// as misconfigured gateways and proxies do.
    EchoCredentials,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query, e.g. `/v1/text-to-speech/abc?output_format=mp3_44100_128`.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// The bookkeeping every fake shares: what it received, what it was told to do next.
#[derive(Default)]
pub(crate) struct Control {
    requests: Mutex<Vec<Recorded>>,
    failures: Mutex<VecDeque<Failure>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Mutex<Duration>,
    uploads: Mutex<Vec<Upload>>,
}

impl Control {
    pub(crate) fn record_upload(&self, upload: &Upload) {
        self.uploads.lock().unwrap().push(upload.clone());
    }

    pub(crate) fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap().clone()
    }

    pub(crate) fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        self.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            uri: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }

    pub(crate) fn next_failure(&self) -> Option<Failure> {
        self.failures.lock().unwrap().pop_front()
    }

    pub(crate) fn fail_next(&self, n: usize, failure: Failure) {
        let mut queue = self.failures.lock().unwrap();
        queue.extend(std::iter::repeat_n(failure, n));
    }

    /// Drops the failures still queued: the provider recovered.
    pub(crate) fn recover(&self) {
        self.failures.lock().unwrap().clear();
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Counts a synthesis as running until the guard drops; returns how many now run.
    pub(crate) fn enter(&self) -> (InFlight<'_>, usize) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        (InFlight(self), now)
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// Waits as long as a synthesis is set to take.
    pub(crate) async fn work(&self) {
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

pub(crate) struct InFlight<'a>(&'a Control);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fake's listener and serving task; the task stops when this drops.
pub(crate) struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Roughly how long a voice takes to say `text`, so longer texts give longer audio.
pub fn speech_ms(text: &str) -> u32 {
    (text.chars().count() as u32 * 60).clamp(300, 20_000)
}

/// 16-bit mono samples of a quiet 220 Hz tone.
fn tone(duration_ms: u32, sample_rate: u32) -> impl Iterator<Item = i16> {
    let n = u64::from(sample_rate) * u64::from(duration_ms) / 1000;
    (0..n).map(move |i| {
        let t = i as f64 / f64::from(sample_rate);
        ((t * 220.0 * std::f64::consts::TAU).sin() * 6000.0) as i16
    })
}

/// A valid mono 16-bit WAV file.
pub fn wav(duration_ms: u32, sample_rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
    for s in tone(duration_ms, sample_rate) {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    out.into_inner()
}

/// Headerless signed 16-bit little-endian mono samples.
pub fn pcm(duration_ms: u32, sample_rate: u32) -> Vec<u8> {
    tone(duration_ms, sample_rate)
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// A valid MPEG-1 Layer III stream of silent frames (128 kbit/s, 44.1 kHz, mono): each
/// frame is a header and zeroed side information, which decoders play as 26 ms of silence.
pub fn mp3(duration_ms: u32) -> Vec<u8> {
    const FRAME_LEN: usize = 417; // 144 * 128000 / 44100, no padding
    let frames = (duration_ms as usize * 44_100 / 1152 / 1000).max(1);
    let mut out = Vec::with_capacity(frames * FRAME_LEN);
    for _ in 0..frames {
        let start = out.len();
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0xC4]);
        out.resize(start + FRAME_LEN, 0);
    }
    out
}

/// What a misbehaving server sends instead of audio.
pub const GARBAGE: &[u8] = b"<html><body>502 Bad Gateway</body></html>";

/// The fake recognisers hear one word every this many seconds of audio.
pub const WORD_EVERY_S: f64 = 0.5;
/// How long each heard word lasts.
pub const WORD_S: f64 = 0.4;
/// Words per sentence: every tenth word ends one.
pub const SENTENCE_WORDS: usize = 10;

const ENGLISH: [&str; 10] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
];
const CHINESE: [&str; 10] = [
    "你好", "世界", "今天", "天气", "很好", "我们", "一起", "录音", "谢谢", "再见",
];

/// One word a fake recogniser heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub start: f64,
    pub end: f64,
    pub word: String,
    /// The sentence it belongs to, counted from 0.
    pub sentence: usize,
}

/// What the fakes "hear" in `seconds` of audio: word `i` starts at `i * 0.5` s, so the words
/// and their times follow the audio's length. The last word of a sentence carries its full stop.
pub fn heard(seconds: f64, chinese: bool) -> Vec<Heard> {
    let count = (seconds / WORD_EVERY_S).floor() as usize;
    (0..count)
        .map(|i| {
            let start = i as f64 * WORD_EVERY_S;
            let lexicon = if chinese { &CHINESE } else { &ENGLISH };
            let mut word = lexicon[i % lexicon.len()].to_string();
            if (i + 1) % SENTENCE_WORDS == 0 || i + 1 == count {
                word.push(if chinese { '。' } else { '.' });
            }
            Heard {
                start,
                end: start + WORD_S,
                word,
                sentence: i / SENTENCE_WORDS,
            }
        })
        .collect()
}

/// The heard words as written, sentence by sentence.
pub fn sentences(words: &[Heard], chinese: bool) -> Vec<(f64, f64, String)> {
    let mut out: Vec<(f64, f64, String)> = Vec::new();
    for w in words {
        match out.get_mut(w.sentence) {
            Some((_, end, text)) => {
                *end = w.end;
                if !chinese {
                    text.push(' ');
                }
                text.push_str(&w.word);
            }
            None => out.push((w.start, w.end, w.word.clone())),
        }
    }
    out
}

/// The whole text the fakes hear in `words`.
pub fn heard_text(words: &[Heard], chinese: bool) -> String {
    let glue = if chinese { "" } else { " " };
    sentences(words, chinese)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect::<Vec<_>>()
        .join(glue)
}

/// Seconds of audio in `bytes`, read by the decoder the server uses, judged by the bytes
/// themselves; `None` for anything that does not decode.
pub fn audio_seconds(bytes: &[u8]) -> Option<f64> {
    use aimake::providers::asr::InputFormat;
    let format = InputFormat::sniff(bytes)?.decodable()?;
    let probe = aimake::audio::probe(bytes, format).ok()?;
    (probe.duration_ms > 0).then(|| probe.duration_ms as f64 / 1000.0)
}

/// A multipart upload as a fake received it.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// Text fields in order, repeated names included (`timestamp_granularities[]`).
    pub fields: Vec<(String, String)>,
    /// The `file` part: its file name, content type and bytes.
    pub file: Option<(String, String, Bytes)>,
}

impl Upload {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A request's parts and its whole body, read however large (the fakes set their own limits).
pub async fn read_request(request: axum::extract::Request) -> (Parts, Bytes) {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, body)
}

/// Reads a `multipart/form-data` body the way the servers do; `Err` is the parser's reason.
/// `parts` carry the router's body limit, which the fakes switch off.
pub async fn read_upload(parts: Parts, body: &Bytes) -> Result<Upload, String> {
    let request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.clone()));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.body_text())?;
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = field.file_name().unwrap_or_default().to_string();
            let content_type = field.content_type().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(|e| e.body_text())?;
            upload.file = Some((file_name, content_type, bytes));
        } else {
            let value = field.text().await.map_err(|e| e.body_text())?;
            upload.fields.push((name, value));
        }
    }
    Ok(upload)
}
