//! `AppState`: everything a handler needs, built by the server's wiring (`app`). It holds no
//! HTTP types: the rate limiters and refusal counts belong to the HTTP layer's own state.

use std::sync::Arc;
use std::time::Instant;

use crate::backup::Backups;
use crate::db::integrity::IntegrityCheck;
use crate::models::ModelsService;
use crate::ops::notify::Notifiers;
use crate::podcast::llm::ScriptWriter;
use crate::services::Services;

/// One `Arc`, so the per-request clones axum makes (every stateful middleware and handler
/// takes its own) cost one reference count.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    /// What the domain services and jobs share; its fields read as the state's own
    /// (`state.db`), and `&state` passes where a service takes `&Services`.
    pub services: Services,
    pub backups: Backups,
    pub started: Instant,
    /// The podcast script writer (answers `NotConfigured` when no model is set).
    pub llm: Arc<ScriptWriter>,
    /// The database's start-up integrity check, which readiness waits for.
    pub integrity: IntegrityCheck,
    /// The neural voice models: what is installed, and pulls in progress.
    pub models: Arc<ModelsService>,
    /// Where alerts are sent, with each notifier's record.
    pub notifiers: Notifiers,
    /// The HTTPS certificate's state, when aimake serves HTTPS itself.
    pub tls: Option<crate::tls::TlsStatus>,
}

impl std::ops::Deref for AppParts {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
