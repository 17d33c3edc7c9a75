//! Operations that run inside the server without a request: the scheduler and what it runs.

pub mod alerts;
pub mod scheduler;
