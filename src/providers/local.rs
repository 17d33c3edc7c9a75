//! The offline voice: the espeak-ng engine run as a child process, so a fresh install speaks.

use std::io::ErrorKind as IoKind;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::{OnceCell, Semaphore};

use super::{
    ErrorKind, Gender, ProviderError, ProviderStatus, SynthesisRequest, Synthesized, TextLimit,
    Tts, Voice,
};
use crate::audio::Format;
use crate::config::LocalVoiceConfig;

const ID: &str = "local";

/// espeak-ng's default pace, in words per minute: what speed 1.0 means.
const BASE_WPM: f32 = 175.0;

/// The engine's own bounds for `-s`.
const MIN_WPM: f32 = 80.0;
const MAX_WPM: f32 = 450.0;

/// The engine has no hard limit; this keeps one process short so long texts can run in
/// parallel and show progress.
const MAX_CHARS: usize = 2000;

/// Asking the engine for its version or voices should be instant.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Local {
    command: String,
    timeout: Duration,
    gate: Semaphore,
    max_concurrency: usize,
    price: u64,
    /// The engine's voices never change while it runs: listed once, on first success.
    voices: OnceCell<Vec<Voice>>,
}

impl Local {
    pub fn new(config: &LocalVoiceConfig) -> Self {
        let max_concurrency = config.max_concurrency.max(1);
        Self {
            command: config.command.clone(),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            gate: Semaphore::new(max_concurrency),
            max_concurrency,
            price: config.price_micros_per_1k_chars,
            voices: OnceCell::new(),
        }
    }

    fn missing(&self) -> ProviderError {
        ProviderError::new(
            ID,
            ErrorKind::Unavailable,
            format!(
                "The local voice engine `{}` is not installed (Debian/Ubuntu: apt-get install espeak-ng)",
                self.command
            ),
        )
    }

    fn spawn_error(&self, e: std::io::Error) -> ProviderError {
        if matches!(e.kind(), IoKind::NotFound | IoKind::PermissionDenied) {
            self.missing()
        } else {
            ProviderError::new(
                ID,
                ErrorKind::Unavailable,
                format!(
                    "The local voice engine `{}` cannot start: {e}",
                    self.command
                ),
            )
        }
    }

    /// Runs the engine with `args`, no stdin, and returns its stdout.
    async fn probe(&self, args: &[&str]) -> Result<String, ProviderError> {
        let child = Command::new(&self.command)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let output = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| {
                ProviderError::new(
                    ID,
                    ErrorKind::Unavailable,
                    format!("The local voice engine `{}` does not respond", self.command),
                )
            })?
            .map_err(|e| self.spawn_error(e))?;
        if !output.status.success() {
            return Err(ProviderError::new(
                ID,
                ErrorKind::Unavailable,
                format!(
                    "The local voice engine `{}` failed: {}",
                    self.command,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    async fn run_engine(
        &self,
        request: &SynthesisRequest,
        wav_path: &std::path::Path,
    ) -> Result<(), ProviderError> {
        let mut child = Command::new(&self.command)
            .arg("-v")
            .arg(&request.voice)
            .arg("-s")
            .arg(words_per_minute(request.speed).to_string())
            // UTF-8 input, whatever the process locale says.
            .args(["-b", "1"])
            .arg("-w")
            .arg(wav_path)
            // The text goes through stdin: never parsed as options, no size limit on argv.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let text = request.text.clone().into_bytes();
        // Written concurrently with waiting, so a chatty stderr can never deadlock the pipe.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&text).await;
            let _ = stdin.write_all(b"\n").await;
        });
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| self.spawn_error(e))?;
        let _ = writer.await;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let kind = if stderr.contains("voice does not exist") {
            ErrorKind::UnknownVoice
        } else {
            ErrorKind::Failed
        };
        Err(ProviderError::new(
            ID,
            kind,
            format!("The local voice failed ({}): {stderr}", request.voice),
        ))
    }
}

/// Maps a speed factor to espeak-ng's `-s` words per minute (1.0 = 175).
pub fn words_per_minute(speed: f32) -> u32 {
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    (BASE_WPM * speed).clamp(MIN_WPM, MAX_WPM).round() as u32
}

/// Parses `espeak-ng --voices`: a header line, then
/// `Pty Language Age/Gender VoiceName File Other-languages`. A language listed twice
/// (variants such as Cantonese with Jyutping) keeps its first entry, since `-v <language>`
/// selects that one.
pub fn parse_voices(listing: &str) -> Vec<Voice> {
    let mut voices: Vec<Voice> = Vec::new();
    for line in listing.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        let (language, age_gender, name) = (cols[1], cols[2], cols[3]);
        if voices.iter().any(|v| v.id == format!("{ID}:{language}")) {
            continue;
        }
        if super::VoiceId::parse(&format!("{ID}:{language}")).is_err() {
            continue;
        }
        let gender = age_gender.rsplit('/').next().and_then(Gender::parse);
        voices.push(Voice::new(
            ID,
            language,
            name.replace('_', " "),
            bcp47(language),
            gender,
        ));
    }
    voices
}

/// espeak-ng's language names as BCP-47 tags: `en-us` → `en-US`, `cmn` → `zh-CN`.
pub fn bcp47(language: &str) -> String {
    let lower = language.to_ascii_lowercase();
    // Chinese varieties are filed under `zh` so a `zh` filter finds them.
    if lower == "cmn" || lower.starts_with("cmn-") {
        return "zh-CN".into();
    }
    if lower == "yue" || lower.starts_with("yue-") {
        return "zh-HK".into();
    }
    let mut out = Vec::new();
    let mut private = false;
    for (i, part) in lower.split('-').enumerate() {
        let tag = if i == 0 || private {
            part.to_string()
        } else if part == "x" {
            private = true;
            part.to_string()
        } else if part.len() == 2 && part.bytes().all(|b| b.is_ascii_alphabetic()) {
            part.to_ascii_uppercase()
        } else if part.len() == 4 && part.bytes().all(|b| b.is_ascii_alphabetic()) {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        } else {
            part.to_string()
        };
        out.push(tag);
    }
    out.join("-")
}

#[async_trait]
impl Tts for Local {
    fn id(&self) -> &'static str {
        ID
    }

    fn model(&self) -> &str {
        "espeak-ng"
    }

    async fn status(&self) -> ProviderStatus {
        match self.probe(&["--version"]).await {
            Ok(version) => ProviderStatus {
                available: true,
                detail: version
                    .lines()
                    .next()
                    .unwrap_or("espeak-ng")
                    .split(" Data at:")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            },
            Err(e) => ProviderStatus {
                available: false,
                detail: e.message,
            },
        }
    }

    async fn voices(&self) -> Result<Vec<Voice>, ProviderError> {
        self.voices
            .get_or_try_init(|| async {
                let listing = self.probe(&["--voices"]).await?;
                Ok(parse_voices(&listing))
            })
            .await
            .cloned()
    }

    fn limits(&self, _voice: &str) -> TextLimit {
        TextLimit::chars(MAX_CHARS)
    }

    fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    fn price_micros_per_1k_chars(&self) -> u64 {
        self.price
    }

    #[tracing::instrument(skip_all, fields(provider = ID, voice = %request.voice, chars = request.text.chars().count()), err)]
    async fn synthesize(&self, request: &SynthesisRequest) -> Result<Synthesized, ProviderError> {
        if super::VoiceId::parse(&format!("{ID}:{}", request.voice)).is_err() {
            return Err(ProviderError::new(
                ID,
                ErrorKind::UnknownVoice,
                format!("`{}` is not a local voice", request.voice),
            ));
        }
        let _permit = self.gate.acquire().await.expect("gate is never closed");
        let dir = tempfile::tempdir().map_err(|e| {
            ProviderError::new(
                ID,
                ErrorKind::Failed,
                format!("cannot make a temporary file: {e}"),
            )
        })?;
        // `-w` writes a WAV with correct sizes; `--stdout` leaves placeholders decoders reject.
        let wav_path = dir.path().join("speech.wav");
        match tokio::time::timeout(self.timeout, self.run_engine(request, &wav_path)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ProviderError::new(
                    ID,
                    ErrorKind::Timeout,
                    format!(
                        "The local voice did not finish within {} ms",
                        self.timeout.as_millis()
                    ),
                ));
            }
        }
        let bytes = tokio::fs::read(&wav_path).await.map_err(|e| {
            ProviderError::new(
                ID,
                ErrorKind::Failed,
                format!("The local voice wrote no audio: {e}"),
            )
        })?;
        if !Format::Wav.looks_like(&bytes) {
            return Err(ProviderError::new(
                ID,
                ErrorKind::BadAudio,
                "The local voice produced no audio for this text",
            ));
        }
        Ok(Synthesized {
            bytes: bytes.into(),
            format: Format::Wav,
            model: self.model().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_maps_to_words_per_minute_around_175() {
        assert_eq!(words_per_minute(1.0), 175);
        assert_eq!(words_per_minute(0.5), 88);
        assert_eq!(words_per_minute(2.0), 350);
        assert_eq!(words_per_minute(0.1), 80);
        assert_eq!(words_per_minute(9.0), 450);
        assert_eq!(words_per_minute(f32::NAN), 175);
    }

    #[test]
    fn the_voice_listing_is_parsed_into_bcp47_voices() {
        let listing = "\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  af              --/M      Afrikaans          gmw/af
 5  cmn             --/M      Chinese_(Mandarin,_latin_as_English) sit/cmn              (zh-cmn 5)(zh 5)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  en-gb-x-rp      --/F      English_(Received_Pronunciation) gmw/en-GB-x-rp       (en 4)
 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)
 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping (zh-yue 5)(zh 8)
";
        let voices = parse_voices(listing);
        let ids: Vec<&str> = voices.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "local:af",
                "local:cmn",
                "local:en-us",
                "local:en-gb-x-rp",
                "local:yue"
            ]
        );
        let en = &voices[2];
        assert_eq!(en.name, "English (America)");
        assert_eq!(en.language, "en-US");
        assert_eq!(en.gender, Some(Gender::Male));
        assert_eq!(voices[1].language, "zh-CN");
        assert_eq!(voices[3].language, "en-GB-x-rp");
        assert_eq!(voices[3].gender, Some(Gender::Female));
        assert_eq!(voices[4].name, "Chinese (Cantonese)");
    }

    #[test]
    fn language_names_become_bcp47_tags() {
        assert_eq!(bcp47("en-us"), "en-US");
        assert_eq!(bcp47("sr-latn"), "sr-Latn");
        assert_eq!(bcp47("cmn-latn-pinyin"), "zh-CN");
        assert_eq!(bcp47("de"), "de");
        assert_eq!(bcp47("en-us-nyc"), "en-US-nyc");
    }
}
