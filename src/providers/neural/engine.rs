//! One loaded model: loaded on first use, shared by every request, run on a blocking thread
//! (never on the async executor) one inference at a time or, for an engine that can share its
//! weights between calls, up to a bound, and dropped after `models.idle_unload_s` without use so
//! an idle server gives its memory back. The neural voices and the Whisper engine both use it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::providers::{ErrorKind, ProviderError};

/// Models loaded in this process, of every kind: the runtime's code is handed back only when
/// none is.
static LOADED_MODELS: AtomicUsize = AtomicUsize::new(0);

struct Slot<E> {
    engine: Option<E>,
    last_used: Instant,
    /// Inferences running on a shared engine ([`Holder::run_shared`]): it is not dropped under
    /// them, or the next request would load a second copy while the first is still held.
    busy: usize,
}

impl<E> Drop for Slot<E> {
    fn drop(&mut self) {
        if self.engine.is_some() {
            LOADED_MODELS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<E> Slot<E> {
    /// The engine, loaded with `load` first when the slot is empty.
    fn loaded(
        &mut self,
        name: &str,
        load: impl FnOnce() -> Result<E, ProviderError>,
    ) -> Result<&mut E, ProviderError> {
        if self.engine.is_none() {
            let started = Instant::now();
            self.engine = Some(load()?);
            LOADED_MODELS.fetch_add(1, Ordering::SeqCst);
            tracing::info!(
                model = %name,
                ms = started.elapsed().as_millis() as u64,
                "model loaded"
            );
        }
        Ok(self.engine.as_mut().expect("loaded above"))
    }
}

pub struct Holder<E> {
    name: String,
    slot: Arc<Mutex<Slot<E>>>,
    /// One inference at a time unless [`Holder::with_concurrency`] says otherwise: each uses
    /// every thread it is given, so more would mostly compete.
    gate: Semaphore,
    idle: Option<Duration>,
    reaper: std::sync::Once,
}

impl<E: Send + 'static> Holder<E> {
    /// `idle_unload_s = 0` keeps the model loaded once it is.
    pub fn new(name: impl Into<String>, idle_unload_s: u64) -> Self {
        Self {
            name: name.into(),
            slot: Arc::new(Mutex::new(Slot {
                engine: None,
                last_used: Instant::now(),
                busy: 0,
            })),
            gate: Semaphore::new(1),
            idle: (idle_unload_s > 0).then(|| Duration::from_secs(idle_unload_s)),
            reaper: std::sync::Once::new(),
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.slot.lock().engine.is_some()
    }

    /// Runs `work` on the loaded engine, loading it with `load` first when needed.
    pub async fn run<R, L, W>(&self, load: L, work: W) -> Result<R, ProviderError>
    where
        R: Send + 'static,
        L: FnOnce() -> Result<E, ProviderError> + Send + 'static,
        W: FnOnce(&mut E) -> Result<R, ProviderError> + Send + 'static,
    {
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        self.start_reaper();
        let slot = self.slot.clone();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = slot.lock();
            let result = work(slot.loaded(&name, load)?);
            slot.last_used = Instant::now();
            result
        })
        .await
        .map_err(|e| self.stopped(e))?
    }

    /// Up to `n` calls of [`Holder::run_shared`] at once (at least one).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.gate = Semaphore::new(n.max(1));
        self
    }

    /// As [`Holder::run`] for an engine whose handle is cheap to clone and safe to use from
    /// several threads (weights behind an `Arc`): the slot is locked only to load and clone it,
    /// so up to the holder's concurrency of `work` run at once, each on its own blocking thread.
    pub async fn run_shared<R, L, W>(&self, load: L, work: W) -> Result<R, ProviderError>
    where
        E: Clone,
        R: Send + 'static,
        L: FnOnce() -> Result<E, ProviderError> + Send + 'static,
        W: FnOnce(E) -> Result<R, ProviderError> + Send + 'static,
    {
        let _permit = self.gate.acquire().await.expect("the gate is never closed");
        self.start_reaper();
        let slot = self.slot.clone();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            let engine = {
                let mut s = slot.lock();
                let engine = s.loaded(&name, load)?.clone();
                s.busy += 1;
                engine
            };
            /// Marks the inference done even when `work` panics.
            struct Done<E>(Arc<Mutex<Slot<E>>>);
            impl<E> Drop for Done<E> {
                fn drop(&mut self) {
                    let mut s = self.0.lock();
                    s.busy -= 1;
                    s.last_used = Instant::now();
                }
            }
            let _done = Done(slot);
            work(engine)
        })
        .await
        .map_err(|e| self.stopped(e))?
    }

    /// The error of an inference whose thread panicked.
    fn stopped(&self, e: tokio::task::JoinError) -> ProviderError {
        ProviderError::new(
            "neural",
            ErrorKind::Failed,
            format!("The {} model stopped unexpectedly: {e}", self.name),
        )
    }

    /// Drops the model now if it has not been used for `models.idle_unload_s`.
    fn start_reaper(&self) {
        let Some(idle) = self.idle else { return };
        self.reaper.call_once(|| {
            let slot: Weak<Mutex<Slot<E>>> = Arc::downgrade(&self.slot);
            let name = self.name.clone();
            let tick = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(tick).await;
                    let Some(slot) = slot.upgrade() else { return };
                    let name = name.clone();
                    // Dropping a session frees hundreds of megabytes: not on the executor.
                    let _ = tokio::task::spawn_blocking(move || {
                        let dropped = {
                            let mut s = slot.lock();
                            if s.engine.is_some() && s.busy == 0 && s.last_used.elapsed() >= idle {
                                s.engine.take()
                            } else {
                                None
                            }
                        };
                        if let Some(engine) = dropped {
                            drop(engine);
                            let last = LOADED_MODELS.fetch_sub(1, Ordering::SeqCst) == 1;
                            release_freed_memory();
                            let paged_out = if last {
                                super::runtime::page_out_library()
                            } else {
                                0
                            };
                            tracing::info!(
                                model = %name,
                                runtime_pages_released_mb = paged_out / (1024 * 1024),
                                "model unloaded after idling"
                            );
                        }
                    })
                    .await;
                }
            });
        });
    }
}

/// After a model is dropped, hand the freed pages back to the system: ONNX Runtime allocates
/// through the C allocator, which keeps them for reuse, and aimake's own allocator (jemalloc)
/// only returns them slowly on a server that has gone idle.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    // `arena.<MALLCTL_ARENAS_ALL>.purge` takes no arguments: every pointer null, length 0.
    // SAFETY: the name is a NUL-terminated mallctl name and no buffers are passed.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn loads_once_runs_in_turn_and_unloads_after_idling() {
        let loads = Arc::new(AtomicUsize::new(0));
        let holder = Arc::new(Holder::<Vec<u8>>::new("test", 1));
        let load = |loads: Arc<AtomicUsize>| {
            move || {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(vec![1, 2, 3])
            }
        };
        for _ in 0..3 {
            let n = holder
                .run(load(loads.clone()), |e: &mut Vec<u8>| Ok(e.len()))
                .await
                .unwrap();
            assert_eq!(n, 3);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(holder.is_loaded());
        // Idle for longer than idle_unload_s (1 s): the reaper drops it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while holder.is_loaded() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!holder.is_loaded());
        holder
            .run(load(loads.clone()), |e: &mut Vec<u8>| Ok(e.len()))
            .await
            .unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_engine_runs_up_to_its_bound_at_once_and_is_not_unloaded_while_busy() {
        let holder = Arc::new(Holder::<Arc<u8>>::new("shared", 1).with_concurrency(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls = (0..4).map(|_| {
            let (holder, running, most) = (holder.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                holder
                    .run_shared(
                        || Ok(Arc::new(7)),
                        move |e| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            // Longer than idle_unload_s: the reaper must wait for it.
                            std::thread::sleep(Duration::from_millis(1500));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(*e)
                        },
                    )
                    .await
            })
        });
        let mut reaped_while_busy = false;
        let all = futures::future::join_all(calls);
        tokio::pin!(all);
        let results = loop {
            tokio::select! {
                r = &mut all => break r,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if running.load(Ordering::SeqCst) > 0 && !holder.is_loaded() {
                        reaped_while_busy = true;
                    }
                }
            }
        };
        for r in results {
            assert_eq!(r.unwrap().unwrap(), 7);
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(!reaped_while_busy);
    }

    #[tokio::test]
    async fn a_failed_load_is_reported_and_retried_next_time() {
        let holder = Holder::<u8>::new("broken", 0);
        let e = holder
            .run(
                || {
                    Err(ProviderError::new(
                        "kokoro",
                        ErrorKind::Failed,
                        "not an ONNX model",
                    ))
                },
                |_| Ok(()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.message, "not an ONNX model");
        assert!(!holder.is_loaded());
        holder.run(|| Ok(7), |e| Ok(*e)).await.unwrap();
        assert!(holder.is_loaded());
    }
}
