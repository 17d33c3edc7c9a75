//! Logging setup: pretty lines on a terminal, JSON lines everywhere else, written by a
//! background thread so a slow stdout never holds up a request.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Lines waiting for the writer thread; past this they are dropped and counted rather than
/// making requests wait. Lines are a few hundred bytes: a few MB at most.
const BUFFERED_LINES: usize = 16_384;

/// The writer thread collects lines into one write of up to this many bytes.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// How often dropped lines are looked for and reported.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Keeps the log writer running; dropping it writes out what is buffered. Hold it for the
/// life of the process.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Installs the global subscriber. `RUST_LOG` wins over `level` when set.
pub fn init(format: Option<LogFormat>, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if terminal {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let (writer, worker) = writer(std::io::stderr());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Json => json_lines(builder).try_init(),
        LogFormat::Pretty => builder.with_ansi(terminal).with_target(false).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    if result.is_ok() {
        let _ = std::thread::Builder::new()
            .name("log-drops".into())
            .spawn(move || {
                let mut reported = 0;
                loop {
                    std::thread::sleep(DROP_REPORT_EVERY);
                    report_dropped(&dropped, &mut reported);
                }
            });
    }
    LogGuard { _worker: worker }
}

/// JSON lines: the event's fields at the top level, `span` the innermost span it was logged
/// in and `spans` every one of them, outermost first, so a line from inside a handler or a job
/// step keeps the request's id and route (or the job's id), not only its own span.
fn json_lines<F, W>(
    builder: fmt::SubscriberBuilder<
        fmt::format::DefaultFields,
        fmt::format::Format<fmt::format::Full, fmt::time::SystemTime>,
        F,
        W,
    >,
) -> fmt::SubscriberBuilder<
    fmt::format::JsonFields,
    fmt::format::Format<fmt::format::Json, fmt::time::SystemTime>,
    F,
    W,
> {
    builder
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(true)
}

/// A writer that hands lines to a thread writing them to `sink` in batches. When the sink
/// is slower than the lines coming in, it drops lines and counts them instead of blocking.
pub fn writer<W: Write + Send + 'static>(sink: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, sink))
}

/// Logs how many lines were dropped since the last report, if any. The total rides along,
/// so a report that is itself dropped is made up for by the next.
pub fn report_dropped(counter: &ErrorCounter, reported: &mut usize) {
    let total = counter.dropped_lines();
    if total > *reported {
        tracing::warn!(
            dropped = total - *reported,
            dropped_total = total,
            "log lines dropped: the log output could not keep up"
        );
        *reported = total;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_line_logged_inside_a_handler_s_span_carries_the_request_s_id() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Lines {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = json_lines(tracing_subscriber::fmt().with_writer(move || sink.clone()))
            .with_env_filter(EnvFilter::new("info"))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", request_id = "01REQ", route = "/api/x");
            let _r = request.enter();
            let handler = tracing::info_span!("create", audio = "01AUD");
            let _h = handler.enter();
            tracing::info!(chars = 12, "audio queued");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "audio queued");
        assert_eq!(line["chars"], 12);
        assert_eq!(line["span"]["name"], "create", "{line}");
        assert_eq!(line["spans"][0]["name"], "request", "{line}");
        assert_eq!(line["spans"][0]["request_id"], "01REQ", "{line}");
        assert_eq!(line["spans"][1]["audio"], "01AUD", "{line}");
    }
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;

    /// A sink that never returns from its first write, like a stdout nobody reads.
    struct Stalled;

    impl Write for Stalled {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.write(&[]).map(|_| ())
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn logging_never_blocks_on_a_stalled_output_and_counts_what_it_drops() {
        let (writer, worker) = writer(Stalled);
        let counter = writer.error_counter();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        let started = Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100_000 {
                tracing::info!(i, "a line nobody reads");
            }
        });
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "100k lines took {:?}",
            started.elapsed()
        );
        let dropped = counter.dropped_lines();
        // All but the queue and what the writer thread took into its write buffer.
        assert!(
            dropped >= 100_000 - BUFFERED_LINES - WRITE_BUFFER_BYTES / 32,
            "dropped {dropped}"
        );

        // The next report says how many.
        let logs = Captured::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let mut reported = 0;
        tracing::subscriber::with_default(subscriber, || {
            report_dropped(&counter, &mut reported);
            report_dropped(&counter, &mut reported);
        });
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(logs.contains(&format!("dropped_total={dropped}")), "{logs}");
        assert_eq!(reported, dropped);
        // The worker thread is stuck in the sink for good; do not wait for it.
        std::mem::forget(worker);
    }
}
