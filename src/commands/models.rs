//! `aimake models list | pull | remove | import`: the neural voice and Whisper models on this
//! machine.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{DecimalBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::models::{Manager, PullProgress};

/// Plain progress lines (not on a terminal) come at every tenth of the way and at least this often.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub fn list(config: &Config) -> anyhow::Result<()> {
    let manager = Manager::new(config)?;
    let rows: Vec<[String; 6]> = manager
        .list()
        .into_iter()
        .map(|m| {
            let licence = if m.license.is_empty() {
                "-".into()
            } else if m.commercial_use {
                m.license
            } else {
                format!("{} (non-commercial)", m.license)
            };
            [
                m.name,
                m.kind.as_str().to_string(),
                if m.languages.is_empty() {
                    "-".into()
                } else {
                    m.languages.join(",")
                },
                DecimalBytes(m.size_bytes).to_string(),
                licence,
                match (m.installed, m.verified) {
                    (true, true) => "yes",
                    (true, false) => "unverified",
                    (false, _) => "no",
                }
                .into(),
            ]
        })
        .collect();
    let header = ["NAME", "KIND", "LANGUAGES", "SIZE", "LICENCE", "INSTALLED"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    writeln!(
        out,
        "\nmodels.dir: {} ({} used)",
        manager.layout().root().display(),
        DecimalBytes(manager.disk_used())
    )?;
    if let Some(lib) = &config.models.onnxruntime {
        writeln!(out, "ONNX Runtime: {} (models.onnxruntime)", lib.display())?;
    }
    Ok(())
}

pub async fn pull(config: &Config, name: &str) -> anyhow::Result<()> {
    let manager = Manager::new(config)?;
    manager.entry(name)?;
    let started = Instant::now();
    let report = if std::io::stdout().is_terminal() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{wide_bar}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec}",
            )?
            .progress_chars("=> "),
        );
        let on_progress = |p: PullProgress| {
            bar.set_length(p.total_bytes);
            bar.set_position(p.done_bytes);
            bar.set_message(format!("{}: {}", p.model, p.file));
        };
        let report = manager.pull(name, &on_progress).await;
        bar.finish_and_clear();
        report?
    } else {
        let lines = Mutex::new(Lines::default());
        let on_progress = |p: PullProgress| {
            if let Some(line) = lines.lock().unwrap().next(&p) {
                println!("{line}");
            }
        };
        manager.pull(name, &on_progress).await?
    };
    if report.downloaded.is_empty() {
        println!(
            "{name} is installed already ({} files verified)",
            report.already_installed.len()
        );
    } else {
        println!(
            "installed {name}: {} file(s), {} fetched in {:.1} s",
            report.downloaded.len(),
            DecimalBytes(report.bytes),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Decides when a plain progress line is due.
#[derive(Default)]
struct Lines {
    last_tenth: Option<u64>,
    last_at: Option<Instant>,
}

impl Lines {
    fn next(&mut self, p: &PullProgress) -> Option<String> {
        let tenth = (p.done_bytes * 10).checked_div(p.total_bytes).unwrap_or(10);
        let due = self.last_tenth != Some(tenth)
            || self.last_at.is_none_or(|at| at.elapsed() >= LINE_EVERY);
        if !due {
            return None;
        }
        self.last_tenth = Some(tenth);
        self.last_at = Some(Instant::now());
        let percent = (p.done_bytes * 100)
            .checked_div(p.total_bytes)
            .unwrap_or(100);
        Some(format!(
            "{}: {} {percent}% ({} of {})",
            p.model,
            p.file,
            DecimalBytes(p.done_bytes),
            DecimalBytes(p.total_bytes)
        ))
    }
}

pub async fn remove(config: &Config, name: &str) -> anyhow::Result<()> {
    let manager = Manager::new(config)?;
    let report = manager.remove(name).await?;
    if report.files == 0 {
        println!("{name} is not installed: nothing to remove");
    } else {
        println!(
            "removed {name}: {} file(s), {} freed",
            report.files,
            DecimalBytes(report.bytes)
        );
    }
    Ok(())
}

/// Imports a directory of official files, or one file (official, or a Whisper model of the
/// user's own, then called `name`).
pub async fn import(config: &Config, path: &Path, name: Option<&str>) -> anyhow::Result<()> {
    let manager = Manager::new(config)?;
    if !path.is_dir() {
        let file = manager.import_file(path, name).await?;
        let size = DecimalBytes(file.bytes);
        if file.verified {
            println!(
                "installed {} ({}, {size}): an official file, verified by its sha256",
                file.path, file.model
            );
        } else {
            let name = file.model.trim_start_matches("whisper:");
            println!(
                "{} {} ({}, {size}): a Whisper model of your own, unverified; use it with [providers.whisper] model = \"{name}\"",
                if file.replaced {
                    "replaced"
                } else {
                    "installed"
                },
                file.path,
                file.model
            );
        }
        return Ok(());
    }
    anyhow::ensure!(
        name.is_none(),
        "--name names one imported Whisper model file; {} is a directory",
        path.display()
    );
    let dir = path;
    let report = manager.import(dir).await?;
    let mut out = std::io::stdout().lock();
    for path in &report.installed {
        writeln!(out, "installed {path}")?;
    }
    for (path, why) in &report.skipped {
        writeln!(out, "skipped {path}: {why}")?;
    }
    writeln!(
        out,
        "{} file(s) installed into {}, {} skipped",
        report.installed.len(),
        manager.layout().root().display(),
        report.skipped.len()
    )?;
    anyhow::ensure!(
        !report.installed.is_empty(),
        "no file of a known model was found in {}",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64) -> PullProgress {
        PullProgress {
            model: "kokoro".into(),
            file: "voices/af_heart.bin".into(),
            done_bytes: done,
            total_bytes: 92_400_000,
        }
    }

    #[test]
    fn plain_lines_come_at_each_tenth() {
        let mut lines = Lines::default();
        assert_eq!(
            lines.next(&at(1_000)).unwrap(),
            "kokoro: voices/af_heart.bin 0% (1.00 kB of 92.40 MB)"
        );
        assert_eq!(lines.next(&at(2_000)), None);
        assert_eq!(
            lines.next(&at(41_580_000)).unwrap(),
            "kokoro: voices/af_heart.bin 45% (41.58 MB of 92.40 MB)"
        );
        assert_eq!(lines.next(&at(41_600_000)), None);
        assert!(lines.next(&at(92_400_000)).unwrap().contains(" 100% "));
    }
}
