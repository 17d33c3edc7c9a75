//! Operations that run inside the server without a request: the scheduler and what it runs.

pub mod error_reports;
pub mod scheduler;
