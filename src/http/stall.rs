//! Request bodies that stop arriving: a body that sends nothing for `server.body_idle_timeout_s`
//! ends with an error, so whatever is reading it gives up and the request's slot is freed; the
//! edge then answers 408.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Set when a body was cut off for idling, for the edge to answer 408 whatever the reader
/// made of the error.
#[derive(Clone, Default)]
pub struct Stalled(Arc<AtomicBool>);

impl Stalled {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A body that ends with an error after `idle` without a byte.
pub struct IdleTimeout {
    inner: Body,
    idle: Duration,
    /// Armed while the inner body is pending; reset by each frame.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    stalled: Stalled,
}

impl IdleTimeout {
    pub fn wrap(inner: Body, idle: Duration) -> (Body, Stalled) {
        let stalled = Stalled::default();
        let body = Self {
            inner,
            idle,
            timer: None,
            armed: false,
            stalled: stalled.clone(),
        };
        (Body::new(body), stalled)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving")]
struct BodyStalled;

impl http_body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame);
        }
        if !this.armed {
            let deadline = Instant::now() + this.idle;
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            this.armed = true;
        }
        let timer = this.timer.as_mut().expect("armed above");
        ready!(timer.as_mut().poll(cx));
        this.stalled.0.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(BodyStalled))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_body_that_keeps_coming_is_read_and_one_that_stops_is_cut_off() {
        let idle = Duration::from_millis(300);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let inner = Body::from_stream(tokio_stream_from(rx));
        let (body, stalled) = IdleTimeout::wrap(inner, idle);
        let reader = tokio::spawn(axum::body::to_bytes(body, 1024));
        for _ in 0..6 {
            tokio::time::sleep(idle / 3).await;
            tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
        }
        assert!(
            !stalled.happened(),
            "slow but steady progress, longer than idle in all"
        );
        tokio::time::sleep(idle * 2).await;
        assert!(reader.await.unwrap().is_err());
        assert!(stalled.happened());
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send + 'static {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}
