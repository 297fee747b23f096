//! Tasks with an owner, for Floe's async crates (floe-lake, floe-query, floe-server).
//!
//! A task spawned with [`SpawnedTask`] is aborted when its handle is dropped, so no task
//! outlives what started it; one spawned into a `tokio::task::JoinSet` is aborted when the
//! set is. Bare `tokio::spawn` and `Runtime::spawn` are refused by clippy
//! (`disallowed-methods` in `clippy.toml`), as DataFusion refuses them: a detached task
//! keeps running after its owner is gone, holding memory and files, with nobody to see its
//! error.
//!
//! This is a crate of its own because `floe-common`, where shared helpers live, must
//! stay free of the async runtime (`floe-log` depends on it and runs no runtime).
#![deny(missing_docs)]

use std::future::Future;

use tokio::runtime::Handle;
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
}
