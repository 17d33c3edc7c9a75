//! The server's side of the model manager: pulls run in the background, one per model, and
//! their progress is kept for the admin API. The first-run auto-pull goes through it too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::manager::{
    Manager, ModelError, ModelLock, ModelStatus, PullProgress, PullReport, RemoveReport,
};
use super::manifest::whisper_name;
use crate::config::ModelsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPhase {
    Running,
    Failed,
    Done,
}

/// The latest pull of one model, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullState {
    pub state: PullPhase,
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub error: Option<String>,
}

pub struct ModelsService {
    manager: Manager,
    pulls: Mutex<HashMap<String, PullState>>,
}

impl ModelsService {
    pub fn new(manager: Manager) -> Arc<Self> {
        Arc::new(Self {
            manager,
            pulls: Mutex::new(HashMap::new()),
        })
    }

    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// The latest pull of `name` this server ran, running or finished.
    pub fn progress(&self, name: &str) -> Option<PullState> {
        self.pulls.lock().unwrap().get(name).cloned()
    }

    /// Bytes done and in total of the running pulls a neural provider waits for: the runtime
    /// and its own models (`kokoro`; every `piper:<voice>`). `None` when nothing it needs is
    /// downloading.
    pub fn provider_progress(&self, provider: &str) -> Option<(u64, u64)> {
        let needed = |name: &str| {
            name == "runtime"
                || name == provider
                || name
                    .strip_prefix(provider)
                    .is_some_and(|rest| rest.starts_with(':'))
        };
        let pulls = self.pulls.lock().unwrap();
        let running: Vec<&PullState> = pulls
            .iter()
            .filter(|(name, p)| p.state == PullPhase::Running && needed(name))
            .map(|(_, p)| p)
            .collect();
        (!running.is_empty()).then(|| {
            (
                running.iter().map(|p| p.done_bytes).sum(),
                running.iter().map(|p| p.total_bytes).sum(),
            )
        })
    }

    pub fn is_pulling(&self, name: &str) -> bool {
        self.progress(name)
            .is_some_and(|p| p.state == PullPhase::Running)
    }

    /// Starts pulling `name` in the background. Refused when the name is unknown or the model
    /// is being pulled (or imported, or removed) already, here or by another process.
    pub async fn start_pull(self: &Arc<Self>, name: &str) -> Result<(), ModelError> {
        let lock = self.begin(name).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.run(lock, true).await;
        });
        Ok(())
    }

    /// Pulls `name` now, its progress visible in [`Self::progress`] while it runs.
    pub async fn pull(&self, name: &str) -> Result<PullReport, ModelError> {
        let lock = self.begin(name).await?;
        self.run(lock, true).await
    }

    /// Deletes the model's files (an imported Whisper model's too); refused while it is being
    /// pulled.
    pub async fn remove(&self, name: &str) -> Result<RemoveReport, ModelError> {
        if self.is_pulling(name) {
            return Err(ModelError::Busy {
                name: name.to_string(),
            });
        }
        let report = self.manager.remove(name).await?;
        self.pulls.lock().unwrap().remove(name);
        Ok(report)
    }

    /// The model's row for the admin API: its status and latest pull.
    pub fn row(&self, status: &ModelStatus) -> serde_json::Value {
        let mut row = serde_json::to_value(status).expect("a status serializes");
        row["pull"] = serde_json::to_value(self.progress(&status.name)).expect("serializes");
        row
    }

    /// Takes the model's lock and marks its pull as running, unless one is.
    async fn begin(&self, name: &str) -> Result<ModelLock, ModelError> {
        let entry = self.manager.entry(name)?;
        let previous = {
            let mut pulls = self.pulls.lock().unwrap();
            if pulls
                .get(name)
                .is_some_and(|p| p.state == PullPhase::Running)
            {
                return Err(ModelError::Busy {
                    name: name.to_string(),
                });
            }
            pulls.insert(
                name.to_string(),
                PullState {
                    state: PullPhase::Running,
                    done_bytes: 0,
                    total_bytes: entry.download_bytes(),
                    error: None,
                },
            )
        };
        match self.manager.lock(name).await {
            Ok(lock) => Ok(lock),
            Err(e) => {
                // Another process holds the model: this server's last pull state stands.
                let mut pulls = self.pulls.lock().unwrap();
                match previous {
                    Some(p) => pulls.insert(name.to_string(), p),
                    None => pulls.remove(name),
                };
                Err(e)
            }
        }
    }

    /// Runs a pull `begin` registered; `warn` logs a failure (the caller logs it otherwise).
    async fn run(&self, lock: ModelLock, warn: bool) -> Result<PullReport, ModelError> {
        let name = lock.name();
        let started = Instant::now();
        let progress = |p: PullProgress| {
            if let Some(state) = self.pulls.lock().unwrap().get_mut(&p.model) {
                state.done_bytes = p.done_bytes;
                state.total_bytes = p.total_bytes;
            }
        };
        let result = self.manager.pull_locked(&lock, &progress).await;
        let mut pulls = self.pulls.lock().unwrap();
        let state = pulls.get_mut(name).expect("begin inserted it");
        match &result {
            Ok(report) => {
                state.state = PullPhase::Done;
                state.done_bytes = report.bytes;
                state.total_bytes = report.bytes;
                tracing::info!(
                    model = name,
                    bytes = report.bytes,
                    files = report.downloaded.len(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "model {name} installed ({} fetched in {:.1} s)",
                    indicatif::DecimalBytes(report.bytes),
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                state.state = PullPhase::Failed;
                state.error = Some(e.to_string());
                if warn {
                    tracing::warn!(model = name, "cannot pull model {name}: {e}");
                }
            }
        }
        result
    }

    /// First run: fetches ONNX Runtime when none is found (`models.onnxruntime` or an installed
    /// library), then Kokoro when it is missing, then the Whisper model
    /// `models.auto_pull_whisper` names when no Whisper model is installed (official or
    /// imported). Never fails: a machine without network access gets one warning saying how
    /// to install the models later.
    pub async fn auto_pull(&self, config: &ModelsConfig) {
        let layout = self.manager.layout();
        let mut wanted = Vec::new();
        if config.onnxruntime.is_none() && layout.runtime_library().is_none() {
            wanted.push("runtime".to_string());
        }
        if let Ok(kokoro) = self.manager.entry("kokoro")
            && !self.manager.is_installed(kokoro)
        {
            wanted.push("kokoro".to_string());
        }
        let whisper = config.auto_pull_whisper.trim();
        if !whisper.is_empty()
            && layout.whisper_models().is_empty()
            && layout.whisper_customs().is_empty()
        {
            wanted.push(whisper_name(whisper));
        }
        for name in &wanted {
            let name = name.as_str();
            let size = self
                .manager
                .entry(name)
                .map(|e| e.download_bytes())
                .unwrap_or(0);
            tracing::info!(
                model = name,
                bytes = size,
                "fetching model {name} ({}) in the background (models.auto_pull)",
                indicatif::DecimalBytes(size)
            );
            let Ok(lock) = self.begin(name).await else {
                // An admin, or an `aimake models` command, is pulling it already.
                continue;
            };
            match self.run(lock, false).await {
                Ok(_) => {}
                Err(ModelError::Busy { .. }) => {}
                Err(e) => {
                    let (what, key) = if name.starts_with("whisper:") {
                        (
                            "Transcription on this machine stays off",
                            "models.auto_pull_whisper = \"\"",
                        )
                    } else {
                        ("Neural voices stay off", "models.auto_pull = false")
                    };
                    tracing::warn!(
                        model = name,
                        network = e.is_network(),
                        "{e} {what} until {name} is installed: `aimake models pull {name}` does it later, `aimake models import DIR` on a machine without internet access; set {key} to stop trying at start-up"
                    );
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(done: u64, total: u64) -> PullState {
        PullState {
            state: PullPhase::Running,
            done_bytes: done,
            total_bytes: total,
            error: None,
        }
    }

    #[test]
    fn a_providers_progress_sums_the_runtime_and_its_own_running_pulls() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.data.dir = dir.path().to_path_buf();
        let service = ModelsService::new(Manager::new(&config).unwrap());
        assert_eq!(service.provider_progress("piper"), None);
        {
            let mut pulls = service.pulls.lock().unwrap();
            pulls.insert("runtime".into(), running(10, 100));
            pulls.insert("kokoro".into(), running(1, 1000));
            pulls.insert("piper:de_DE-thorsten-medium".into(), running(5, 50));
            let mut done = running(7, 7);
            done.state = PullPhase::Done;
            pulls.insert("piper:en_US-joe-medium".into(), done);
        }
        // Any Piper voice counts, not only one; finished pulls and Kokoro's do not.
        assert_eq!(service.provider_progress("piper"), Some((15, 150)));
        assert_eq!(service.provider_progress("kokoro"), Some((11, 1100)));
        // A name that only starts like the provider's is not its model.
        service
            .pulls
            .lock()
            .unwrap()
            .insert("piperx".into(), running(1, 1));
        assert_eq!(service.provider_progress("piper"), Some((15, 150)));
    }

    #[tokio::test]
    async fn a_pull_refused_because_another_process_holds_the_model_keeps_the_last_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.data.dir = dir.path().to_path_buf();
        let service = ModelsService::new(Manager::new(&config).unwrap());
        let failed = PullState {
            state: PullPhase::Failed,
            done_bytes: 3,
            total_bytes: 9,
            error: Some("the mirror is down".into()),
        };
        let name = "piper:en_US-joe-medium";
        service
            .pulls
            .lock()
            .unwrap()
            .insert(name.into(), failed.clone());
        // `aimake models` in another process holds the model.
        let other = Manager::new(&config).unwrap();
        let _held = other.lock(name).await.unwrap();
        let err = service.start_pull(name).await.unwrap_err();
        assert!(matches!(err, ModelError::Busy { .. }), "{err}");
        assert_eq!(service.progress(name), Some(failed));
        // With no earlier pull there is still nothing to show.
        let _held = other.lock("kokoro").await.unwrap();
        assert!(service.start_pull("kokoro").await.is_err());
        assert_eq!(service.progress("kokoro"), None);
    }
}
