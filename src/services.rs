//! The handles the domain services and the jobs share: what speech and podcast work needs,
//! and nothing of HTTP or of how the server is wired together.

use std::sync::Arc;

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::jobs::Jobs;
use crate::links::Links;
use crate::providers::Providers;
use crate::storage::Storage;

/// Built once at start-up; cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub storage: Storage,
    /// The job queue, whose handlers are given these same services.
    pub jobs: Arc<Jobs<Services>>,
    pub providers: Providers,
    pub auth: Auth,
    /// Public links: media, feeds and shares.
    pub links: Links,
}
