//! Operations that run inside the server without a request: the scheduler and what it runs,
//! and what the server measures of itself (metrics, the minute series).

pub mod metrics;
pub mod scheduler;
pub mod series;
