//! `aimake selftest`: each voice engine on this machine speaks a known sentence, Whisper hears
//! it, and the word error rate per voice is printed.

use crate::config::Config;
use crate::providers::Providers;
use crate::transcription::selftest;

/// Prints one line per voice; fails when Whisper has no model or any voice failed.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let providers = Providers::from_config(config)?;
    let report = selftest::run(&providers)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "\"{}\" heard by Whisper ({})",
        report.sentence, report.model
    );
    anyhow::ensure!(
        !report.voices.is_empty(),
        "no voice engine runs on this machine: install espeak-ng, or run `aimake models pull kokoro`"
    );
    for v in &report.voices {
        match (&v.error, v.word_error_rate, &v.heard) {
            (None, Some(rate), Some(heard)) => println!(
                "{:<28} word error rate {:>5.1} %  {:>6} ms  \"{heard}\"",
                v.voice,
                rate * 100.0,
                v.elapsed_ms
            ),
            (error, _, _) => println!(
                "{:<28} FAILED: {}",
                v.voice,
                error.as_deref().unwrap_or("no answer")
            ),
        }
    }
    anyhow::ensure!(!report.failed(), "the round trip failed for some voices");
    Ok(())
}
