//! Whisper on this machine, through whisper.cpp compiled into the binary, as the `whisper`
//! speech recognition provider: an official model the model manager installed
//! (`whisper:base`), a user's own imported ggml file, or a ggml file named by path in config.
//!
//! The model is checked before whisper.cpp sees it (a file that is not a complete Whisper ggml
//! model is refused with a sentence, never handed over), loaded on first use, shared by up to
//! `max_concurrency` inferences on blocking threads, and dropped after `models.idle_unload_s`.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{
    Asr, AsrLimits, Capabilities, InputFormat, Segment, Task, Transcript, TranscriptionRequest,
    Word, language_code, precheck,
};
use crate::config::WhisperConfig;
use crate::models::{Layout, ggml};
use crate::providers::neural::engine::Holder;
use crate::providers::{ErrorKind, ProviderError, ProviderStatus};

const ID: &str = "whisper";
const DISPLAY: &str = "Whisper";

/// What the operator runs to get the default model.
pub const PULL_BASE: &str = "aimake models pull whisper:base";

/// The longest piece one call hears. whisper.cpp works through 30-second windows whatever it is
/// given, so longer pieces gain nothing but the text before each window, which five minutes
/// give plenty of; shorter ones bound what a piece holds (5 minutes of 16 kHz samples is
/// 19 MB, its spectrogram 10 MB), let a long recording show progress every minute or so of
/// work on two cores, and let a resumed job repeat at most that.
const MAX_PIECE: Duration = Duration::from_secs(5 * 60);

/// A piece's bytes as the splitter sends it (16 kHz mono 16-bit: 9.6 MB for `MAX_PIECE`), with
/// room for containers that carry it less compactly.
const MAX_BYTES: u64 = 32 * 1024 * 1024;

/// The containers the decoder reads: a piece is decoded back to 16 kHz mono before whisper.cpp
/// hears it.
const FORMATS: &[InputFormat] = &[
    InputFormat::Flac,
    InputFormat::Wav,
    InputFormat::Mp3,
    InputFormat::Ogg,
    InputFormat::Webm,
    InputFormat::Mp4,
    InputFormat::M4a,
];

/// whisper.cpp refuses less than a second of audio; shorter pieces are padded with silence.
const MIN_SAMPLES: usize = 16_000 + 1_600;

/// Quiet is judged in frames of 100 ms.
const FRAME: usize = 1_600;
/// A frame is quiet under -60 dBFS, or 40 dB under the loudest frame of the piece (so a
/// recording made quietly is judged by its own level).
const QUIET_FLOOR: f32 = 1e-6;
const QUIET_BELOW_LOUDEST: f32 = 1e-4;
/// Quiet stretches of 2 s or more are taken out before Whisper hears a piece, but for 300 ms
/// at each side: Whisper fills long silence with invented sentences (often the last one heard,
/// over and over) and spends a 30-second window on each half minute of it.
const QUIET_MIN_FRAMES: usize = 20;
const QUIET_KEEP_FRAMES: usize = 3;

/// Whisper's context holds 448 tokens; a prompt may take the half before the text.
const MAX_PROMPT_TOKENS: usize = 223;

/// A loaded model, shared by the inferences running on it.
type Engine = Arc<WhisperContext>;

pub struct Whisper {
    layout: Layout,
    /// `model` from config: a variant, an imported name, or an absolute path.
    configured: String,
    /// The name the configured model goes by in requests and usage rows.
    default_name: String,
    beam_size: usize,
    threads: usize,
    max_concurrency: usize,
    gate: Semaphore,
    idle_unload_s: u64,
    /// One holder per model file, so each is loaded once and unloaded after idling.
    holders: Mutex<HashMap<PathBuf, Arc<Holder<Engine>>>>,
    /// The last file that failed its check or load, and why, for `status`.
    failed: Mutex<Option<(PathBuf, String)>>,
}

impl Whisper {
    pub fn new(config: &WhisperConfig, layout: Layout, threads: usize, idle_unload_s: u64) -> Self {
        install_log_hook();
        let configured = config.model.trim().to_string();
        let default_name = if Path::new(&configured).is_absolute() {
            Path::new(&configured)
                .file_stem()
                .map_or_else(|| configured.clone(), |s| s.to_string_lossy().into_owned())
        } else {
            configured.clone()
        };
        let max_concurrency = config.max_concurrency.max(1);
        Self {
            layout,
            configured,
            default_name,
            beam_size: config.beam_size.clamp(1, MAX_BEAM),
            threads,
            max_concurrency,
            gate: Semaphore::new(max_concurrency),
            idle_unload_s,
            holders: Mutex::new(HashMap::new()),
            failed: Mutex::new(None),
        }
    }

    /// The file a model name stands for, when it is installed: the configured path under its
    /// own name, else an official variant, else an imported model. Names from requests never
    /// reach outside the models directory.
    fn path_of(&self, name: &str) -> Option<PathBuf> {
        if name == self.default_name && Path::new(&self.configured).is_absolute() {
            let path = PathBuf::from(&self.configured);
            return path.is_file().then_some(path);
        }
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return None;
        }
        [
            self.layout.whisper_model(name),
            self.layout.whisper_custom(name),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }

    fn not_installed(&self, name: &str) -> ProviderError {
        let message = if Path::new(&self.configured).is_absolute() && name == self.default_name {
            format!(
                "The Whisper model file {} does not exist: fix providers.whisper.model, or run \
                 `{PULL_BASE}` and set it to base",
                self.configured
            )
        } else if crate::models::Manifest::builtin()
            .get(&format!("whisper:{name}"))
            .is_some()
            || name == "base"
        {
            format!(
                "The Whisper model `{name}` is not installed: run `aimake models pull whisper:{name}`"
            )
        } else {
            format!(
                "There is no Whisper model `{name}`: run `{PULL_BASE}`, or `aimake models import` \
                 a ggml file under that name"
            )
        };
        ProviderError::new(ID, ErrorKind::Unavailable, message)
    }

    fn holder(&self, path: &Path) -> Arc<Holder<Engine>> {
        self.holders
            .lock()
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let name = format!("whisper {}", path.display());
                Arc::new(
                    Holder::new(name, self.idle_unload_s).with_concurrency(self.max_concurrency),
                )
            })
            .clone()
    }

    /// Whether a model of this file is in memory now.
    pub fn is_loaded(&self, name: &str) -> bool {
        let Some(path) = self.path_of(name) else {
            return false;
        };
        self.holders
            .lock()
            .get(&path)
            .is_some_and(|h| h.is_loaded())
    }

    /// Whether the model `name` is multilingual (it can detect languages and translate); read
    /// from its header, so an imported model says for itself.
    fn multilingual(&self, name: &str) -> bool {
        self.path_of(name)
            .and_then(|p| ggml::read_hparams(&p).ok())
            .is_some_and(|h| h.multilingual())
    }

    fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// whisper.cpp decodes with at most 8 beams.
const MAX_BEAM: usize = 8;

#[async_trait]
impl Asr for Whisper {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        &self.default_name
    }

    fn models(&self) -> Vec<String> {
        let mut names = vec![self.default_name.clone()];
        for name in self
            .layout
            .whisper_models()
            .into_iter()
            .chain(self.layout.whisper_customs())
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    async fn status(&self) -> ProviderStatus {
        let Some(path) = self.path_of(&self.default_name) else {
            let installed = self.models().len() > 1;
            let mut detail = self.not_installed(&self.default_name).message;
            if !installed && self.default_name == "base" {
                detail = format!(
                    "No Whisper model is installed: run `{PULL_BASE}` (or `aimake models import` \
                     a ggml file) to transcribe on this machine"
                );
            }
            return ProviderStatus {
                available: false,
                detail,
            };
        };
        if let Some((failed, why)) = self.failed.lock().as_ref()
            && *failed == path
        {
            return ProviderStatus {
                available: false,
                detail: why.clone(),
            };
        }
        let loaded = if self.is_loaded(&self.default_name) {
            "loaded"
        } else {
            "not loaded yet"
        };
        ProviderStatus {
            available: true,
            detail: format!(
                "whisper.cpp {}, model {} ({}, {loaded}), beam {}, {} threads",
                whisper_rs::WHISPER_CPP_VERSION,
                self.default_name,
                path.display(),
                self.beam_size,
                self.threads()
            ),
        }
    }

    fn ready(&self) -> bool {
        self.path_of(&self.default_name).is_some()
    }

    fn limits(&self, _model: &str) -> AsrLimits {
        AsrLimits {
            max_bytes: MAX_BYTES,
            max_duration: Some(MAX_PIECE),
            formats: FORMATS,
        }
    }

    fn capabilities(&self, model: &str) -> Capabilities {
        let multilingual = self.multilingual(model);
        Capabilities {
            translate: multilingual,
            word_timestamps: true,
            segment_timestamps: true,
            speaker_labels: false,
            language_detection: multilingual,
            streaming: false,
        }
    }

    fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    fn price_micros_per_minute(&self, _model: &str) -> u64 {
        0
    }

    #[tracing::instrument(skip_all, fields(provider = ID, format = request.format.extension(), bytes = request.audio.len()), err)]
    async fn transcribe(
        &self,
        request: &TranscriptionRequest,
    ) -> Result<Transcript, ProviderError> {
        let name = request.model_for(self).to_string();
        let path = self
            .path_of(&name)
            .ok_or_else(|| self.not_installed(&name))?;
        precheck(self, DISPLAY, request)
            .map_err(|(kind, message)| ProviderError::new(ID, kind, message))?;
        let language = match request.language.as_deref().map(str::trim) {
            Some(l) if !l.is_empty() => {
                let code = l
                    .split(['-', '_'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if whisper_rs::get_lang_id(&code).is_none() {
                    return Err(ProviderError::new(
                        ID,
                        ErrorKind::Rejected,
                        format!("Whisper does not know the language `{l}`"),
                    ));
                }
                Some(code)
            }
            _ => None,
        };
        let job = Job {
            audio: request.audio.clone(),
            model: name,
            language,
            prompt: request.prompt.clone(),
            temperature: request.temperature,
            task: request.task,
            words: request.granularities.words,
            segments: request.granularities.segments,
            beam_size: self.beam_size,
            threads: self.threads(),
        };
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        let load_path = path.clone();
        let result = self
            .holder(&path)
            .run_shared(move || load(&load_path), move |engine| job.run(&engine))
            .await;
        let mut failed = self.failed.lock();
        match &result {
            Err(e)
                if e.kind == ErrorKind::Failed && e.message.contains(&*path.to_string_lossy()) =>
            {
                *failed = Some((path, e.message.clone()));
            }
            Ok(_) if failed.as_ref().is_some_and(|(p, _)| *p == path) => *failed = None,
            _ => {}
        }
        result
    }
}

/// One call's work, moved to a blocking thread.
struct Job {
    audio: bytes::Bytes,
    model: String,
    /// ISO 639-1, or `None` to detect.
    language: Option<String>,
    prompt: Option<String>,
    temperature: Option<f32>,
    task: Task,
    words: bool,
    segments: bool,
    beam_size: usize,
    threads: usize,
}

impl Job {
    fn run(self, ctx: &WhisperContext) -> Result<Transcript, ProviderError> {
        let pcm = crate::audio::decode_for_recognition(&self.audio).map_err(|e| {
            ProviderError::new(
                ID,
                ErrorKind::UnsupportedFormat,
                format!("{DISPLAY} could not read the audio: {e}"),
            )
        })?;
        let duration = pcm.samples.len() as f64 / f64::from(crate::audio::RECOGNITION_RATE);
        let multilingual = ctx.is_multilingual();
        let spoken = match (&self.language, multilingual) {
            (_, false) => Some("en".to_string()),
            (Some(l), true) => Some(l.clone()),
            (None, true) => None,
        };
        let mut transcript = Transcript {
            language: match self.task {
                Task::Translate => Some("en".into()),
                Task::Transcribe => spoken.clone(),
            },
            duration,
            text: String::new(),
            segments: Vec::new(),
            words: Vec::new(),
            model: self.model.clone(),
        };
        // Silence is an empty transcript, without asking a model that would rather invent a
        // "Thank you." than say nothing.
        let Some((mut samples, timeline)) = compact(&pcm.samples) else {
            return Ok(transcript.tidy());
        };
        if samples.len() < MIN_SAMPLES {
            samples.resize(MIN_SAMPLES, 0.0);
        }

        let prompt_tokens = match self.prompt.as_deref().map(|p| p.replace('\0', " ")) {
            Some(p) if !p.trim().is_empty() => {
                let tokens = ctx.tokenize(&p, 4096).map_err(|e| {
                    ProviderError::new(
                        ID,
                        ErrorKind::Rejected,
                        format!("The prompt cannot be used: {e}"),
                    )
                })?;
                tokens[tokens.len().saturating_sub(MAX_PROMPT_TOKENS)..].to_vec()
            }
            _ => Vec::new(),
        };
        let mut params = FullParams::new(if self.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: self.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        });
        params.set_n_threads(self.threads as i32);
        params.set_translate(self.task == Task::Translate);
        if multilingual {
            // whisper-rs copies the name into a string it never frees: a few bytes a piece,
            // and only when the request names its language (detection passes none).
            params.set_language(spoken.as_deref());
        }
        params.set_token_timestamps(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_suppress_nst(true);
        if let Some(t) = self.temperature {
            params.set_temperature(t.clamp(0.0, 1.0));
        }
        if !prompt_tokens.is_empty() {
            params.set_tokens(&prompt_tokens);
        }

        let mut state = ctx.create_state().map_err(|e| {
            ProviderError::new(
                ID,
                ErrorKind::Failed,
                format!("{DISPLAY} could not start: {e}"),
            )
        })?;
        let started = std::time::Instant::now();
        state.full(params, &samples).map_err(|e| {
            ProviderError::new(
                ID,
                ErrorKind::Failed,
                format!("{DISPLAY} could not transcribe the audio: {e}"),
            )
        })?;
        tracing::debug!(
            audio_ms = (duration * 1000.0) as u64,
            ms = started.elapsed().as_millis() as u64,
            "whisper transcribed a piece"
        );
        if transcript.language.is_none() {
            transcript.language =
                whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(language_code);
        }

        let eot = ctx.token_eot();
        let mut texts = Vec::new();
        let mut words = Vec::new();
        for segment in state.as_iter() {
            let text = segment
                .to_str_lossy()
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            let mut tokens = Vec::new();
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                let data = token.token_data();
                if data.id >= eot {
                    continue;
                }
                tokens.push(Piece {
                    bytes: token.to_bytes().unwrap_or_default().to_vec(),
                    t0: timeline.original(data.t0),
                    t1: timeline.original_end(data.t1),
                });
            }
            let (start, end) = (
                centis(timeline.original(segment.start_timestamp())),
                centis(timeline.original_end(segment.end_timestamp())),
            );
            words.extend(join_tokens(&tokens, start, end));
            texts.push(text.clone());
            transcript.segments.push(Segment {
                start,
                end,
                text,
                speaker: None,
            });
        }
        transcript.text = super::join_words(texts.iter().map(String::as_str));
        transcript.words = if self.words { words } else { Vec::new() };
        if !self.segments {
            transcript.segments.clear();
        }
        Ok(transcript.tidy())
    }
}

fn centis(t: i64) -> f64 {
    t.max(0) as f64 / 100.0
}

/// Where the audio Whisper heard came from in the piece: each kept stretch's start in the heard
/// audio and in the piece, in samples.
#[derive(Debug, PartialEq)]
struct Timeline {
    spans: Vec<(usize, usize)>,
}

impl Timeline {
    /// A start time in the heard audio (centiseconds) as a time in the piece.
    fn original(&self, centis: i64) -> i64 {
        self.map(centis, false)
    }

    /// An end time: one that falls where two kept stretches meet ends the first, rather than
    /// stretching over the quiet taken out between them.
    fn original_end(&self, centis: i64) -> i64 {
        self.map(centis, true)
    }

    fn map(&self, centis: i64, end: bool) -> i64 {
        let at = usize::try_from(centis.max(0)).unwrap_or(0) * 160;
        let i = self
            .spans
            .partition_point(|(heard, _)| *heard < at || (!end && *heard == at));
        let (heard, piece) = self.spans[i.saturating_sub(1)];
        ((piece + at.saturating_sub(heard)) / 160) as i64
    }
}

/// `samples` with their long quiet stretches taken out (see [`QUIET_MIN_FRAMES`]), and where
/// what is left came from; `None` when every frame is quiet.
fn compact(samples: &[f32]) -> Option<(Vec<f32>, Timeline)> {
    let energy: Vec<f32> = samples
        .chunks(FRAME)
        .map(|f| f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32)
        .collect();
    let loudest = energy.iter().copied().fold(0.0f32, f32::max);
    if loudest <= QUIET_FLOOR {
        return None;
    }
    let threshold = QUIET_FLOOR.max(loudest * QUIET_BELOW_LOUDEST);
    let quiet: Vec<bool> = energy.iter().map(|e| *e < threshold).collect();
    // Frame ranges to take out.
    let mut cuts = Vec::new();
    let mut i = 0;
    while i < quiet.len() {
        if !quiet[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < quiet.len() && quiet[i] {
            i += 1;
        }
        if i - start >= QUIET_MIN_FRAMES {
            let from = if start == 0 {
                0
            } else {
                start + QUIET_KEEP_FRAMES
            };
            let to = if i == quiet.len() {
                i
            } else {
                i - QUIET_KEEP_FRAMES
            };
            cuts.push((from * FRAME, (to * FRAME).min(samples.len())));
        }
    }
    let mut kept = Vec::with_capacity(samples.len());
    let mut spans = Vec::new();
    let mut from = 0;
    for (cut_start, cut_end) in cuts.into_iter().chain([(samples.len(), samples.len())]) {
        if cut_start > from {
            spans.push((kept.len(), from));
            kept.extend_from_slice(&samples[from..cut_start]);
        }
        from = cut_end;
    }
    Some((kept, Timeline { spans }))
}

/// One text token of a segment: its bytes (a piece of UTF-8, maybe not a whole character)
/// and its times in centiseconds.
struct Piece {
    bytes: Vec<u8>,
    t0: i64,
    t1: i64,
}

/// Whisper's tokens as words: a token that starts with a space, or with a CJK character (which
/// are written without spaces), starts a word; the others (the rest of a word, its
/// punctuation) join the word before. Times are kept within the segment.
fn join_tokens(tokens: &[Piece], start: f64, end: f64) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let (mut t0, mut t1) = (start, start);
    let flush = |bytes: &mut Vec<u8>, t0: f64, t1: f64, words: &mut Vec<Word>| {
        let word = String::from_utf8_lossy(bytes).trim().to_string();
        bytes.clear();
        if !word.is_empty() {
            words.push(Word {
                start: t0,
                end: t1.max(t0),
                word,
                speaker: None,
            });
        }
    };
    for token in tokens {
        let first = String::from_utf8_lossy(&token.bytes).chars().next();
        let starts_word = token.bytes.first() == Some(&b' ')
            || first.is_some_and(|c| crate::providers::is_wide(c) && c.is_alphanumeric());
        let (a, b) = (
            centis(token.t0).clamp(start, end),
            centis(token.t1).clamp(start, end),
        );
        if starts_word && !bytes.is_empty() {
            flush(&mut bytes, t0, t1, &mut words);
        }
        if bytes.is_empty() {
            t0 = a;
        }
        bytes.extend_from_slice(&token.bytes);
        t1 = b.max(t0);
    }
    flush(&mut bytes, t0, t1, &mut words);
    words
}

/// Loads a checked model file; blocking.
fn load(path: &Path) -> Result<Engine, ProviderError> {
    let unusable = |reason: String| {
        ProviderError::new(
            ID,
            ErrorKind::Failed,
            format!(
                "The Whisper model file {} cannot be used: {reason}. Run `{PULL_BASE}`, or \
                 import a whisper.cpp ggml model (ggml-*.bin)",
                path.display()
            ),
        )
    };
    ggml::check_file(path).map_err(|e| unusable(e.to_string()))?;
    let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
        .map_err(|e| unusable(format!("whisper.cpp could not load it ({e})")))?;
    Ok(Arc::new(ctx))
}

/// Routes whisper.cpp's and ggml's log lines (model loading, timings, warnings) into tracing at
/// debug and trace level instead of stderr: aimake reports what matters in its own words.
fn install_log_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `log_line` is a C ABI function that never unwinds (it catches panics) and
        // keeps no pointer it is given past the call.
        unsafe {
            whisper_rs::set_log_callback(Some(log_line), std::ptr::null_mut());
            whisper_rs::whisper_rs_sys::ggml_log_set(Some(log_line), std::ptr::null_mut());
        }
    });
}

unsafe extern "C" fn log_line(
    level: whisper_rs::whisper_rs_sys::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp passes a NUL-terminated string that lives for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let _ = std::panic::catch_unwind(|| {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        use whisper_rs::whisper_rs_sys::{
            ggml_log_level_GGML_LOG_LEVEL_ERROR as ERROR,
            ggml_log_level_GGML_LOG_LEVEL_WARN as WARN,
        };
        if level == ERROR || level == WARN {
            tracing::debug!(target: "whisper_cpp", "{text}");
        } else {
            tracing::trace!(target: "whisper_cpp", "{text}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quiet_stretches_are_taken_out_and_times_map_back_into_the_piece() {
        let second = 16_000;
        let tone = |n: usize| (0..n).map(|i| 0.3 * ((i as f32) * 0.05).sin());
        // 3 s of silence, 1 s of sound, 5 s of faint noise, 1 s of sound, 1 s of silence.
        let mut samples: Vec<f32> = vec![0.0; 3 * second];
        samples.extend(tone(second));
        samples.extend((0..5 * second).map(|i| if i % 2 == 0 { 1e-5 } else { -1e-5 }));
        samples.extend(tone(second));
        samples.extend(vec![0.0; second]);
        let (kept, timeline) = compact(&samples).unwrap();
        // Kept: 0.3 s before the first sound, the sound, 0.3 s either side of the gap, the
        // second sound and the last second (shorter than a long stretch).
        assert_eq!(kept.len(), (3 + 10 + 6 + 10 + 10) * second / 10);
        assert_eq!(
            timeline,
            Timeline {
                spans: vec![(0, 27 * second / 10), (16 * second / 10, 87 * second / 10)]
            }
        );
        // In centiseconds: the start of what was heard is 2.7 s into the piece; 2 s into
        // what was heard is 0.4 s after the gap, 9.1 s into the piece.
        assert_eq!(timeline.original(0), 270);
        assert_eq!(timeline.original(100), 370);
        assert_eq!(timeline.original(200), 910);
        assert_eq!(timeline.original(390), 1100);
        // Where the two stretches meet: a start is after the gap, an end before it.
        assert_eq!(timeline.original(160), 870);
        assert_eq!(timeline.original_end(160), 430);
        // Silence, digital or faint, is nothing to hear; a quiet recording is heard whole.
        assert!(compact(&vec![0.0; 5 * second]).is_none());
        assert!(compact(&vec![1e-4; 5 * second]).is_none());
        let quiet: Vec<f32> = tone(5 * second).map(|s| s / 30.0).collect();
        assert_eq!(compact(&quiet).unwrap().0.len(), 5 * second);
    }

    fn piece(text: &str, t0: i64, t1: i64) -> Piece {
        Piece {
            bytes: text.as_bytes().to_vec(),
            t0,
            t1,
        }
    }

    #[test]
    fn sub_word_tokens_join_into_words_with_times_inside_the_segment() {
        let tokens = [
            piece(" Hel", 10, 30),
            piece("lo", 30, 50),
            piece(",", 50, 52),
            piece(" world", 60, 900),
            piece(".", -1, 905),
        ];
        let words = join_tokens(&tokens, 0.1, 2.0);
        let got: Vec<(&str, f64, f64)> = words
            .iter()
            .map(|w| (w.word.as_str(), w.start, w.end))
            .collect();
        assert_eq!(got, [("Hello,", 0.1, 0.52), ("world.", 0.6, 2.0)]);
    }

    #[test]
    fn a_character_split_across_tokens_is_joined_whole_and_cjk_characters_are_words() {
        let ni = "你".as_bytes();
        let tokens = [
            Piece {
                bytes: ni[..2].to_vec(),
                t0: 0,
                t1: 10,
            },
            Piece {
                bytes: ni[2..].to_vec(),
                t0: 10,
                t1: 20,
            },
            piece("好", 20, 40),
            piece("。", 40, 45),
        ];
        let words: Vec<String> = join_tokens(&tokens, 0.0, 1.0)
            .into_iter()
            .map(|w| w.word)
            .collect();
        assert_eq!(words, ["你", "好。"]);
    }

    fn tiny_model() -> Vec<u8> {
        crate::models::ggml::tests::tiny_model(51_865)
    }

    fn provider(dir: &Path, model: &str) -> Whisper {
        let config = WhisperConfig {
            model: model.into(),
            ..WhisperConfig::default()
        };
        Whisper::new(&config, Layout::new(dir), 1, 0)
    }

    #[tokio::test]
    async fn without_a_model_status_names_the_command_that_installs_one() {
        let dir = tempfile::tempdir().unwrap();
        let whisper = provider(dir.path(), "base");
        assert!(!whisper.ready());
        let status = whisper.status().await;
        assert!(!status.available);
        assert!(status.detail.contains(PULL_BASE), "{}", status.detail);
        let e = whisper
            .transcribe(&TranscriptionRequest::new(vec![1u8; 64], InputFormat::Wav))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains(PULL_BASE), "{}", e.message);
    }

    #[tokio::test]
    async fn request_model_names_never_leave_the_models_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.bin");
        std::fs::write(&outside, tiny_model()).unwrap();
        let layout = Layout::new(dir.path().join("models"));
        std::fs::create_dir_all(layout.whisper_custom_dir()).unwrap();
        std::fs::write(layout.whisper_custom("mine"), tiny_model()).unwrap();
        let whisper = provider(&dir.path().join("models"), "base");
        assert_eq!(whisper.path_of("mine"), Some(layout.whisper_custom("mine")));
        assert_eq!(whisper.path_of(&outside.to_string_lossy()), None);
        assert_eq!(whisper.path_of("../outside"), None);
        assert_eq!(whisper.models(), ["base", "mine"]);
        // A path in config is the operator's choice, under its file's name.
        let configured = provider(&dir.path().join("models"), &outside.to_string_lossy());
        assert_eq!(configured.model(), "outside");
        assert_eq!(configured.path_of("outside"), Some(outside));
        assert!(configured.ready());
        assert!(configured.capabilities("outside").translate);
    }

    #[tokio::test]
    async fn a_corrupt_model_is_a_clear_error_that_status_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.whisper_dir()).unwrap();
        let mut cut = tiny_model();
        cut.truncate(cut.len() - 5);
        std::fs::write(layout.whisper_model("base"), cut).unwrap();
        let whisper = provider(dir.path(), "base");
        assert!(whisper.ready());
        let wav = crate::audio::encode_wav(
            &crate::audio::Pcm::new(16_000, 1, vec![0.1; 16_000]).unwrap(),
        )
        .unwrap();
        let e = whisper
            .transcribe(&TranscriptionRequest::new(wav, InputFormat::Wav))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed);
        assert!(e.message.contains("cut short"), "{}", e.message);
        let status = whisper.status().await;
        assert!(!status.available);
        assert_eq!(status.detail, e.message);
    }
}
