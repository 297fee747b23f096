//! Tasks with an owner, for Floe's async crates (floe-lake, floe-query, floe-server).
//!
//! A task spawned with [`SpawnedTask`] is aborted when its handle is dropped, so no task
//! outlives what started it; one spawned into a `tokio::task::JoinSet` is aborted when the
//! set is. Bare `tokio::spawn` and `Runtime::spawn` are refused by clippy
//! (`disallowed-methods` in `clippy.toml`), as DataFusion refuses them: a detached task
//! keeps running after its owner is gone, holding memory and files, with nobody to see its
//! error.
//!
//! [`BackgroundRuntime`] is a runtime of its own for CPU-heavy background work (SQL
//! queries, landing rounds) whose threads run at the lowest CPU priority, so that the
//! Kafka request path preempts them.
//!
//! This is a crate of its own because `floe-common`, where shared helpers live, must
//! stay free of the async runtime (`floe-log` depends on it and runs no runtime).
#![deny(missing_docs)]

use std::future::Future;

use tokio::runtime::{Handle, Runtime};
use tokio::task::{JoinError, JoinHandle};

/// A task that is aborted when this handle is dropped.
#[derive(Debug)]
#[must_use = "dropping the handle aborts the task"]
pub struct SpawnedTask<T> {
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> SpawnedTask<T> {
    /// Spawns `fut` on the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn<F>(fut: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        #[allow(clippy::disallowed_methods)] // The one place that spawns: the handle owns it.
        let handle = tokio::spawn(fut);
        Self {
            handle: Some(handle),
        }
    }

    /// Spawns `fut` on the runtime of `runtime`.
    pub fn spawn_on<F>(runtime: &Handle, fut: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        #[allow(clippy::disallowed_methods)] // The one place that spawns: the handle owns it.
        let handle = runtime.spawn(fut);
        Self {
            handle: Some(handle),
        }
    }

    /// Waits for the task's result.
    ///
    /// # Errors
    /// The task panicked or was aborted.
    pub async fn join(mut self) -> Result<T, JoinError> {
        // Awaited in place: if this future is dropped half-way, `self` still aborts the
        // task on drop.
        let result = match self.handle.as_mut() {
            Some(h) => h.await,
            // Unreachable: the handle is only taken by `stop`, which consumes `self`.
            None => std::future::pending().await,
        };
        self.handle = None;
        result
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Aborts the task and waits until it is gone.
    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
            let _ = h.await;
        }
    }
}

impl<T> Drop for SpawnedTask<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

/// A tokio runtime for CPU-heavy background work. Every thread it starts, workers and
/// blocking threads alike, runs at the lowest CPU priority (nice 19): on a busy machine
/// the scheduler then gives the Kafka request path, on the main runtime, the CPU first,
/// instead of slicing it evenly with the background work. Dropping it shuts it down
/// without waiting (dropping a runtime from async code would panic otherwise).
#[derive(Debug)]
pub struct BackgroundRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl BackgroundRuntime {
    /// Starts `workers` worker threads (at least one) named `name`, with stacks of
    /// `stack_bytes` when given.
    ///
    /// # Errors
    /// The threads cannot be started.
    pub fn new(name: &str, workers: usize, stack_bytes: Option<usize>) -> std::io::Result<Self> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(workers.max(1))
            .thread_name(name)
            .on_thread_start(lowest_cpu_priority)
            .enable_all();
        if let Some(bytes) = stack_bytes {
            builder.thread_stack_size(bytes);
        }
        let runtime = builder.build()?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Where to spawn (see [`SpawnedTask::spawn_on`]).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Lowers the calling thread to nice 19. Best effort: a thread that cannot be lowered
/// runs at the normal priority, which is only slower for the request path.
fn lowest_cpu_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
        tracing::debug!(error = %e, "cannot lower the priority of a background thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_dropped_handle_aborts_its_task_and_a_joined_one_returns() {
        // The task holds a clone of `held`; once it is aborted its future is dropped and
        // the count falls back to one. A detached task would hold it for the hour.
        let held = Arc::new(());
        let inside = held.clone();
        let task = SpawnedTask::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(inside);
        });
        assert!(!task.is_finished());
        assert_eq!(Arc::strong_count(&held), 2);
        drop(task);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&held) > 1 {
            assert!(Instant::now() < deadline, "the task outlived its handle");
            tokio::task::yield_now().await;
        }
        let task = SpawnedTask::spawn(async { 41 + 1 });
        assert_eq!(task.join().await.expect("result"), 42);
    }

    #[tokio::test]
    async fn background_threads_run_at_the_lowest_priority() {
        fn nice() -> i32 {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("priority")
        }
        let rt = BackgroundRuntime::new("floe-test-bg", 1, None).expect("runtime");
        let worker = SpawnedTask::spawn_on(rt.handle(), async { nice() });
        assert_eq!(worker.join().await.expect("worker"), 19);
        let blocking = rt.handle().spawn_blocking(nice);
        assert_eq!(blocking.await.expect("blocking thread"), 19);
    }
}
