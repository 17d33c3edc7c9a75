//! Fake OpenAI, ElevenLabs and Tencent Cloud servers on 127.0.0.1:0, following shared providers.md:
//! they check keys and signatures, enforce input limits with the real error shapes, return real
//! audio, count requests, and can be told to fail the next N requests in the ways real ones do.

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
}

impl Control {
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
