//! What the server measures of itself: the Prometheus metrics (`metrics.rs`) and the 24 h
//! ring of minute buckets the alert engine and the monitoring page read (`series.rs`). A leaf
//! module: the database, jobs, providers and storage record into it, and it imports none of
//! them.

pub mod metrics;
pub mod series;
