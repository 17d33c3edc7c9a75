//! Operations that run inside the server without a request: the scheduler and what it runs,
//! the alert engine, the notifiers that tell operators about alerts, and error reports.

pub mod alerts;
pub mod error_reports;
pub mod notify;
pub mod scheduler;
