//! Operations that run inside the server without a request: the scheduler and what it runs,
//! and the notifiers that tell operators about alerts.

pub mod notify;
pub mod scheduler;
