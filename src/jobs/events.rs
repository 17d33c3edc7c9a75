//! In-process progress events, keyed by the job's subject (an audio id), for SSE listeners.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::db::{AudioId, AudioStatus};

/// Listeners that fall this far behind skip to the newest event; progress is idempotent.
const BUFFER: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// The `status` event of `GET /api/audios/{id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEvent {
    pub status: AudioStatus,
    pub progress: f64,
    pub error: Option<ErrorInfo>,
}

impl StatusEvent {
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<AudioId, broadcast::Sender<StatusEvent>>>,
}

impl Hub {
    pub fn subscribe(&self, subject: AudioId) -> broadcast::Receiver<StatusEvent> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(subject)
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Sends to current listeners; a channel nobody listens to is dropped, so memory stays
    /// bounded by the number of open listeners.
    pub fn publish(&self, subject: AudioId, event: StatusEvent) {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(&subject) {
            let final_event = event.is_final();
            if tx.send(event).is_err() || final_event {
                map.remove(&subject);
            }
        }
    }

    pub fn listeners(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|tx| tx.receiver_count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AudioStatus::{Running, Succeeded};

    fn ev(status: AudioStatus, progress: f64) -> StatusEvent {
        StatusEvent {
            status,
            progress,
            error: None,
        }
    }

    #[tokio::test]
    async fn listeners_get_events_until_the_final_one_and_nothing_leaks() {
        let hub = Hub::default();
        let id = AudioId::from(ulid::Ulid::generate());
        hub.publish(id, ev(Running, 0.1)); // nobody listens yet: dropped
        let mut rx = hub.subscribe(id);
        hub.publish(id, ev(Running, 0.5));
        hub.publish(id, ev(Succeeded, 1.0));
        assert_eq!(rx.recv().await.unwrap(), ev(Running, 0.5));
        assert_eq!(rx.recv().await.unwrap(), ev(Succeeded, 1.0));
        assert!(
            rx.recv().await.is_err(),
            "the channel closes after the final event"
        );
        assert_eq!(hub.listeners(), 0);
        assert!(hub.channels.lock().unwrap().is_empty());
    }
}
