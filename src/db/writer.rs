//! The writer connection has a thread of its own, and writes queue for it in order.
//!
//! Every write goes to this one connection, so it is the busiest path in the database. Run
//! through the blocking pool behind an async lock, each write paid for two hand-offs before
//! it started: the lock passed to the next task, which then woke a pool thread. Under a
//! stream of writes (every job is three) the connection sat idle between them while those
//! threads were scheduled. Here the thread takes the next write off the queue the moment the
//! last one ends, on a thread whose caches already hold the connection.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use anyhow::Context;
use parking_lot::FairMutex;
use rusqlite::Connection;

type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writer connection and its thread; the thread stops and is joined on drop.
pub struct Writer {
    queue: Option<Sender<Work>>,
    /// Shared with the thread, for callers already on a blocking thread (see [`Writer::blocking`]).
    /// Fair: unlocking hands it to the longest waiter, so neither side can take it back at
    /// once and starve the other.
    conn: Arc<FairMutex<Connection>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection) -> anyhow::Result<Self> {
        let conn = Arc::new(FairMutex::new(conn));
        let (queue, works) = channel::<Work>();
        let thread = {
            let conn = conn.clone();
            std::thread::Builder::new()
                .name("db-writer".into())
                .spawn(move || serve(&conn, &works))?
        };
        Ok(Self {
            queue: Some(queue),
            conn,
            thread: Some(thread),
        })
    }

    /// Queues `f` for the writer thread and waits for its result. A panic in `f` is an error
    /// here; the thread goes on with the next write.
    pub async fn run<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let work: Work = Box::new(move |conn| {
            let _enter = span.enter();
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
            // The caller may have given up waiting; the write happened all the same.
            let _ = done.send(out);
        });
        self.queue
            .as_ref()
            .context("database is closed")?
            .send(work)
            .ok()
            .context("database writer has stopped")?;
        match result.await.context("database writer task failed")? {
            Ok(out) => out,
            Err(_) => anyhow::bail!("database writer task failed: the write panicked"),
        }
    }

    /// Runs `f` on the calling thread, between two queued writes. For code already on a
    /// blocking thread that holds the connection across several steps (online backup).
    pub fn blocking<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut conn = self.conn.lock();
        f(&mut conn)
    }
}

/// Writes run in turns: one turn is every write queued when it starts (at most `TURN`).
/// Between turns a blocking caller waiting for the connection gets it: an online backup
/// steps between turns, and a queued write waits at most a turn and a step.
fn serve(conn: &FairMutex<Connection>, works: &Receiver<Work>) {
    const TURN: usize = 64;
    while let Ok(work) = works.recv() {
        let mut conn = conn.lock();
        work(&mut conn);
        for work in works.try_iter().take(TURN - 1) {
            work(&mut conn);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue stops the thread once the writes already queued are done.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            // The last handle can go inside a write that owned it; the thread ends on its own.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::time::Duration;

    #[test]
    fn the_last_handle_can_go_inside_a_write() {
        let writer = Arc::new(Writer::start(Connection::open_in_memory().unwrap()).unwrap());
        // Hold the connection so the write below stays queued while the other handle goes.
        let conn = writer.conn.clone();
        let held = conn.lock();
        let (ran, ended) = std::sync::mpsc::channel();
        let inside = writer.clone();
        let queued = writer
            .run(move |c| {
                drop(inside);
                c.execute_batch("CREATE TABLE t (n INTEGER)")?;
                ran.send(()).unwrap();
                Ok(())
            })
            .now_or_never();
        assert!(queued.is_none(), "queued behind the held connection");
        drop(writer);
        drop(held);
        ended
            .recv_timeout(Duration::from_secs(10))
            .expect("the write ran and its thread dropped the writer without joining itself");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_write_goes_before_the_next_step_of_a_blocking_caller() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let writer = Arc::new(Writer::start(Connection::open_in_memory().unwrap()).unwrap());
        let steps = Arc::new(AtomicUsize::new(0));
        let (holding, held) = std::sync::mpsc::channel();
        // An online backup's shape: take the connection, work, let go, take it again at once.
        let stepper = {
            let (writer, steps) = (writer.clone(), steps.clone());
            std::thread::spawn(move || {
                for step in 0..3 {
                    writer.blocking(|_| {
                        if step == 0 {
                            holding.send(()).unwrap();
                            // Time for the write below to queue and wait for the connection.
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        // Counted while the step still holds the connection, so the count the
                        // write sees is the steps that ran before it, however threads are timed.
                        steps.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        };
        held.recv().unwrap();
        let seen = steps.clone();
        let steps_before_write = writer
            .run(move |_| Ok(seen.load(Ordering::SeqCst)))
            .await
            .unwrap();
        stepper.join().unwrap();
        assert_eq!(
            steps_before_write, 1,
            "the write that waited ran right after the step it waited for"
        );
    }
}
