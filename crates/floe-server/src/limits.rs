//! Limits against hostile and careless clients that are not a single request's business:
//! connections per client address, and the count of every refusal a limit of the Kafka
//! port makes, so an operator sees on `/metrics` which limit bites
//! (`floe_limit_refusals_total{limit}`; SQL's are `floe_sql_queries_total{outcome="refused"}`).
//!
//! Each limit's setting and default is listed in `docs/operations.md` ("Limits").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

/// A limit that refused something, as labelled in `floe_limit_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A connection over `[kafka] max_connections_per_ip`.
    ConnectionsPerIp,
    /// A connection closed after `[kafka] connections_max_idle` without a request.
    IdleConnection,
    /// A request that did not arrive whole within `[kafka] request_arrival_timeout`.
    RequestArrival,
    /// A request frame over `[kafka] max_request_bytes`.
    RequestSize,
    /// Produce records over a request's or the broker's decompression budget.
    Decompression,
    /// A topic or partition over `[kafka] max_partitions`.
    Partitions,
    /// A group limit (`[groups]`: id length, groups, members, member metadata).
    Groups,
}

impl Limit {
    const ALL: [Limit; 7] = [
        Limit::ConnectionsPerIp,
        Limit::IdleConnection,
        Limit::RequestArrival,
        Limit::RequestSize,
        Limit::Decompression,
        Limit::Partitions,
        Limit::Groups,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::IdleConnection => "idle_connection",
            Limit::RequestArrival => "request_arrival",
            Limit::RequestSize => "request_size",
            Limit::Decompression => "decompression",
            Limit::Partitions => "partitions",
            Limit::Groups => "groups",
        }
    }
}

/// One counter per [`Limit`], made once so that counting is a relaxed add.
#[derive(Debug, Clone)]
pub struct Refusals {
    counters: Vec<(Limit, Counter)>,
}

impl Refusals {
    /// Counters for every limit, registered in `family`.
    pub fn new(family: &prometheus_client::metrics::family::Family<LimitLabels, Counter>) -> Self {
        let counters = Limit::ALL
            .iter()
            .map(|&l| {
                (
                    l,
                    family.get_or_create_owned(&LimitLabels {
                        limit: l.name().to_owned(),
                    }),
                )
            })
            .collect();
        Self { counters }
    }

    /// Counts one refusal by `limit`.
    pub fn count(&self, limit: Limit) {
        if let Some((_, c)) = self.counters.iter().find(|(l, _)| *l == limit) {
            c.inc();
        }
    }

    /// Refusals by `limit` so far (tests).
    pub fn get(&self, limit: Limit) -> u64 {
        self.counters
            .iter()
            .find(|(l, _)| *l == limit)
            .map_or(0, |(_, c)| c.get())
    }
}

/// Labels of `floe_limit_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct LimitLabels {
    /// [`Limit::name`].
    pub limit: String,
}

/// Raises the soft limit on open files to the hard limit, as Kafka's packaging does
/// with `ulimit -n`: the default soft limit (1024 on most Linux systems) is exhausted by
/// a few hundred partitions' active segments, Kafka connections and Parquet reads.
/// Returns the limit now in force; a failure is logged and the old limit kept.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let current = getrlimit(Resource::Nofile);
    let Some(hard) = current.maximum else {
        // Unlimited hard limit: the kernel's nr_open caps it; ask for a generous value.
        let wanted = rustix::process::Rlimit {
            current: Some(1 << 20),
            maximum: None,
        };
        return match setrlimit(Resource::Nofile, wanted) {
            Ok(()) => Some(1 << 20),
            Err(_) => current.current,
        };
    };
    if current.current == Some(hard) {
        return Some(hard);
    }
    match setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    ) {
        Ok(()) => {
            tracing::debug!(from = ?current.current, to = hard, "raised the open files limit");
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(error = %e, limit = ?current.current, "cannot raise the open files limit");
            current.current
        }
    }
}

/// How often a limit that keeps refusing logs a line about it.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A log line at most every [`WARN_EVERY`], with the count since the last one: a client
/// that opens thousands of connections a second must not also fill the log.
#[derive(Debug)]
pub struct ThrottledWarning {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for ThrottledWarning {
    fn default() -> Self {
        Self {
            state: Mutex::new((None, 0)),
        }
    }
}

impl ThrottledWarning {
    /// Counts one occurrence; returns how many there were since the last line when a line
    /// is due now.
    pub fn due(&self) -> Option<u64> {
        let mut s = self.state.lock();
        s.1 += 1;
        let now = Instant::now();
        if s.0
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            return None;
        }
        let n = s.1;
        *s = (Some(now), 0);
        Some(n)
    }
}

/// Connections open per client address, against `[kafka] max_connections_per_ip`.
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    warning: ThrottledWarning,
}

impl PerIp {
    /// At most `max` connections per address (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
            warning: ThrottledWarning::default(),
        })
    }

    /// A slot for one more connection from `ip`, or None when it holds `max` already.
    /// The slot is given back when dropped, however the connection ends.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            drop(open);
            if let Some(count) = self.warning.due() {
                tracing::warn!(%ip, max = self.max, refused = count,
                    "closing new connections: the address holds max_connections_per_ip already");
            }
            return None;
        }
        *n += 1;
        Some(IpSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.lock().get(&ip).copied().unwrap_or(0)
    }
}

/// One connection's place in [`PerIp`].
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_gets_slots_back() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = per_ip.admit(a).expect("first");
        let _s2 = per_ip.admit(a).expect("second");
        assert!(per_ip.admit(a).is_none(), "third from the same address");
        let _other = per_ip.admit(b).expect("another address is not affected");
        drop(s1);
        assert_eq!(per_ip.open(a), 1);
        let _s3 = per_ip.admit(a).expect("a slot given back is free again");
        drop(_s3);
        drop(_s2);
        assert_eq!(per_ip.open(a), 0);
        assert!(per_ip.open.lock().get(&a).is_none(), "no entry left behind");
    }

    #[test]
    fn a_throttled_warning_counts_what_it_did_not_log() {
        let w = ThrottledWarning::default();
        assert_eq!(w.due(), Some(1));
        assert_eq!(w.due(), None);
        assert_eq!(w.due(), None);
        w.state.lock().0 = Some(Instant::now() - WARN_EVERY);
        assert_eq!(w.due(), Some(3));
    }
}
