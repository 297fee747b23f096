//! How much memory decompressing produced records may take: per request, and for the
//! whole broker.
//!
//! Kafka's broker streams through a compressed batch's records; Floe keeps them
//! decompressed until the lake's tail has them, so the bytes a produce request can make
//! the broker hold are not bounded by its size. zstd and gzip compress zeros better than
//! 1000:1: a 5 MB request of a few hundred such batches could ask for over 100 GiB. Two
//! bounds close that, both counted on the buffers as they grow (capacity, not length):
//!
//! - a [`DecompressionBudget`] per request, shared by all its partitions, which decompress
//!   concurrently (`[kafka] max_request_decompressed_bytes`);
//! - a [`BytePool`] for the broker, shared by every request in flight
//!   (`[kafka] decompression_pool_bytes`): a request waits a short while for room, then
//!   is answered with a retriable error.
//!
//! A batch that alone decompresses past the request budget is refused for good (it can
//! never be taken); a batch that finds the budget or the pool used by others is refused
//! as retriable, and the client sends it again (a retry of only the partitions that failed
//! is a smaller request).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The most bytes one read of stored batches (a tail rebuild from the WAL, ListOffsets by
/// time) may decompress to: those batches were checked when they were produced, under
/// the request budget, so this only guards against bytes changed on disk.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// Why decompression stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Shortfall {
    /// The records of one partition alone decompress past the request budget: they can
    /// never be taken, whatever else the request holds.
    #[error("records decompress to more than {limit} bytes")]
    TooLarge {
        /// The request budget.
        limit: usize,
    },
    /// Other partitions of the request, or other requests, use the memory now: retriable.
    #[error("{0}")]
    Busy(&'static str),
}

/// Bytes of decompressed records the whole broker holds at once, for requests in flight.
#[derive(Debug)]
pub struct BytePool {
    capacity: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl BytePool {
    /// A pool of `capacity` bytes.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// Takes `n` bytes, waiting until `deadline` for others to give back room. Blocking:
    /// decompression runs on blocking threads.
    fn take(&self, n: usize, deadline: Instant) -> bool {
        if n > self.capacity {
            return false;
        }
        let mut used = self.used.lock();
        while self.capacity - *used < n {
            if self.freed.wait_until(&mut used, deadline).timed_out() {
                if self.capacity - *used >= n {
                    break;
                }
                return false;
            }
        }
        *used += n;
        true
    }

    fn give_back(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut used = self.used.lock();
        *used = used.saturating_sub(n);
        drop(used);
        self.freed.notify_all();
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        *self.used.lock()
    }

    /// The pool's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The decompression budget of one produce request (or one read), shared by its
/// partitions. What it took from the broker's pool goes back when it is dropped, which
/// the request does once its records have reached the log and the tail.
#[derive(Debug)]
pub struct DecompressionBudget {
    limit: usize,
    left: AtomicUsize,
    pool: Option<Arc<BytePool>>,
    from_pool: AtomicUsize,
    wait: Duration,
}

impl DecompressionBudget {
    /// `limit` bytes for the request, each also taken from `pool` (waiting up to `wait`
    /// for room there).
    pub fn new(limit: usize, pool: Option<Arc<BytePool>>, wait: Duration) -> Self {
        Self {
            limit,
            left: AtomicUsize::new(limit),
            pool,
            from_pool: AtomicUsize::new(0),
            wait,
        }
    }

    /// A budget of [`MAX_DECOMPRESSED_BYTES`] with no pool, for reading stored batches.
    pub fn for_stored() -> Self {
        Self::new(MAX_DECOMPRESSED_BYTES, None, Duration::ZERO)
    }

    /// Takes `n` more bytes for one partition's records, which had `taken` before.
    ///
    /// # Errors
    /// [`Shortfall::TooLarge`] when `taken + n` is over the whole request budget,
    /// [`Shortfall::Busy`] when the request's other partitions or the broker's other
    /// requests hold the room.
    pub fn take(&self, taken: usize, n: usize) -> Result<(), Shortfall> {
        if taken.saturating_add(n) > self.limit {
            return Err(Shortfall::TooLarge { limit: self.limit });
        }
        let mut left = self.left.load(Ordering::Relaxed);
        loop {
            if left < n {
                return Err(Shortfall::Busy(
                    "the request's other partitions use its decompression budget; retry",
                ));
            }
            match self.left.compare_exchange_weak(
                left,
                left - n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => left = now,
            }
        }
        if let Some(pool) = &self.pool {
            if !pool.take(n, Instant::now() + self.wait) {
                self.left.fetch_add(n, Ordering::AcqRel);
                return Err(Shortfall::Busy(
                    "the broker's decompression memory is in use by other requests; retry",
                ));
            }
            self.from_pool.fetch_add(n, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Bytes taken so far.
    pub fn used(&self) -> usize {
        self.limit - self.left.load(Ordering::Relaxed)
    }

    /// Gives back `n` bytes taken before (records that were refused, or that reached
    /// the tail), to the request and to the broker's pool.
    pub fn give_back(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.left.fetch_add(n, Ordering::AcqRel);
        if let Some(pool) = &self.pool {
            let mut held = self.from_pool.load(Ordering::Relaxed);
            loop {
                let back = n.min(held);
                match self.from_pool.compare_exchange_weak(
                    held,
                    held - back,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        pool.give_back(back);
                        break;
                    }
                    Err(now) => held = now,
                }
            }
        }
    }
}

impl Drop for DecompressionBudget {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(*self.from_pool.get_mut());
        }
    }
}

/// One partition's draw on a [`DecompressionBudget`]: counts what it took, so that
/// [`Shortfall::TooLarge`] can tell its own size from its share of the request.
#[derive(Debug)]
pub struct Meter<'a> {
    budget: &'a DecompressionBudget,
    taken: usize,
}

impl<'a> Meter<'a> {
    /// A meter on `budget`, having taken nothing.
    pub fn new(budget: &'a DecompressionBudget) -> Self {
        Self { budget, taken: 0 }
    }

    /// Takes `n` bytes more.
    ///
    /// # Errors
    /// As [`DecompressionBudget::take`].
    pub fn take(&mut self, n: usize) -> Result<(), Shortfall> {
        self.budget.take(self.taken, n)?;
        self.taken += n;
        Ok(())
    }

    /// Bytes taken so far.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// Gives back everything taken (records refused).
    pub fn release(self) {
        self.budget.give_back(self.taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_budget_is_shared_and_one_partition_alone_may_be_too_large() {
        let b = DecompressionBudget::new(100, None, Duration::ZERO);
        let mut p1 = Meter::new(&b);
        let mut p2 = Meter::new(&b);
        p1.take(60).expect("room");
        assert_eq!(
            p2.take(50),
            Err(Shortfall::Busy(
                "the request's other partitions use its decompression budget; retry"
            )),
            "room is there for 50 alone, not beside the other partition"
        );
        p2.take(40).expect("what is left");
        assert_eq!(b.used(), 100);
        let mut p3 = Meter::new(&b);
        assert_eq!(p3.take(101), Err(Shortfall::TooLarge { limit: 100 }));
        assert_eq!(p1.take(41), Err(Shortfall::TooLarge { limit: 100 }));
    }

    #[test]
    fn the_broker_pool_is_given_back_when_a_request_ends() {
        let pool = BytePool::new(100);
        let a = DecompressionBudget::new(80, Some(pool.clone()), Duration::ZERO);
        Meter::new(&a).take(70).expect("room in the pool");
        let b = DecompressionBudget::new(80, Some(pool.clone()), Duration::from_millis(10));
        assert!(matches!(Meter::new(&b).take(40), Err(Shortfall::Busy(_))));
        assert_eq!(
            b.used(),
            0,
            "a refused take leaves the request budget as it was"
        );
        Meter::new(&b).take(30).expect("what is left of the pool");
        assert_eq!(pool.used(), 100);
        drop(a);
        assert_eq!(pool.used(), 30);
        drop(b);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn bytes_given_back_are_free_again_for_the_request_and_the_pool() {
        let pool = BytePool::new(100);
        let b = DecompressionBudget::new(100, Some(pool.clone()), Duration::ZERO);
        let mut m = Meter::new(&b);
        m.take(80).expect("room");
        m.release();
        assert_eq!((b.used(), pool.used()), (0, 0));
        Meter::new(&b).take(100).expect("all of it again");
        b.give_back(30);
        assert_eq!((b.used(), pool.used()), (70, 70));
        drop(b);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_waiting_request_gets_room_freed_by_another() {
        let pool = BytePool::new(100);
        let a = DecompressionBudget::new(100, Some(pool.clone()), Duration::ZERO);
        Meter::new(&a).take(100).expect("all of it");
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let b = DecompressionBudget::new(100, Some(pool), Duration::from_secs(30));
                Meter::new(&b).take(50).is_ok()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(a);
        assert!(waiter.join().expect("thread"), "took the room given back");
    }
}
