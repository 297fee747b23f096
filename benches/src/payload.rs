//! Message payloads.
//!
//! * `random`: one block of pseudo-random bytes, sent as every message's payload. This is
//!   what `floe-loadgen` always sent; it does not compress, and as every message carries
//!   the same bytes, a columnar encoder would collapse it into one dictionary entry.
//! * `json`: JSON-like application events (ids, small vocabularies, numbers, a short text
//!   drawn from a word list), each unique (it carries the message's sequence number). They
//!   compress about as real events do, so Parquet encoding and zstd have realistic work.
//! * `avro`: application events in Confluent's Avro wire format, schema id 1
//!   ([`crate::avro::Events`]), for typed topics (`lake.value.schema=wire`); register
//!   [`crate::avro::SCHEMA`] first (`floe-lakebench avro-schema` prints the request body).
//!
//! Payloads come from a pool built once, so producing one costs a copy, not a generator
//! run; the pool is large enough (8 MiB of JSON) that repeats are farther apart than any
//! Parquet page or zstd window.

use std::fmt::Write as _;

use anyhow::bail;

/// Which payloads to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The same incompressible bytes in every message.
    Random,
    /// Unique JSON-like events.
    Json,
    /// Avro events in the wire format, schema id 1.
    Avro,
}

impl PayloadKind {
    /// The name `parse_kind` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Json => "json",
            Self::Avro => "avro",
        }
    }
}

/// Parses `random`, `json` or `avro`.
pub fn parse_kind(s: &str) -> anyhow::Result<PayloadKind> {
    match s {
        "random" => Ok(PayloadKind::Random),
        "json" => Ok(PayloadKind::Json),
        "avro" => Ok(PayloadKind::Avro),
        other => bail!("payload must be 'random', 'json' or 'avro', not '{other}'"),
    }
}

/// JSON events in the pool.
const POOL: usize = 8192;
/// Digits of the sequence number written into every JSON payload.
const SEQ_DIGITS: usize = 10;

/// A pool of payloads of one size; [`Payloads::fill`] gives message `i` its bytes.
pub struct Payloads {
    pool: Vec<Vec<u8>>,
    /// Where the sequence number sits in each JSON payload (None for random).
    seq_at: Option<usize>,
}

impl Payloads {
    /// Builds the pool for payloads of exactly `size` bytes (Avro events: about).
    ///
    /// # Errors
    /// An Avro event does not encode.
    pub fn new(kind: PayloadKind, size: usize) -> anyhow::Result<Self> {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        Ok(match kind {
            PayloadKind::Random => Self {
                pool: vec![(0..size).map(|_| rng.next() as u8).collect()],
                seq_at: None,
            },
            // Each event is unique within the pool; a sequence number is not patched in,
            // as a digit written into the Avro binary could change a length.
            PayloadKind::Avro => {
                let events = crate::avro::Events::new(size)?;
                Self {
                    pool: (0..POOL as u64)
                        .map(|i| events.get(i))
                        .collect::<anyhow::Result<_>>()?,
                    seq_at: None,
                }
            }
            PayloadKind::Json => {
                let mut seq_at = None;
                let pool = (0..POOL)
                    .map(|_| {
                        let (bytes, at) = json_event(&mut rng, size);
                        seq_at = at;
                        bytes
                    })
                    .collect();
                Self { pool, seq_at }
            }
        })
    }

    /// Writes message `i`'s payload into `out` (replacing its contents).
    pub fn fill(&self, i: u64, out: &mut Vec<u8>) {
        out.clear();
        let n = self.pool.len() as u64;
        let idx = usize::try_from(i % n).unwrap_or(0);
        out.extend_from_slice(&self.pool[idx]);
        if let Some(at) = self.seq_at {
            let mut v = i;
            for d in out[at..at + SEQ_DIGITS].iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
    }

    /// Message `i`'s payload as a new vector.
    pub fn get(&self, i: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.fill(i, &mut out);
        out
    }
}

/// xorshift64: fast, deterministic, good enough for test data.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 >> 11
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const COUNTRIES: &[&str] = &[
    "DE", "FR", "GB", "US", "NL", "ES", "IT", "PL", "SE", "BR", "IN", "JP", "CA", "AU", "CH", "AT",
];
const DEVICES: &[&str] = &["ios", "android", "web-desktop", "web-mobile", "tv", "api"];
const EVENTS: &[&str] = &[
    "page_view",
    "click",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "login",
    "logout",
    "share",
];
const WORDS: &[&str] = &[
    "the",
    "order",
    "was",
    "shipped",
    "from",
    "warehouse",
    "north",
    "south",
    "east",
    "west",
    "customer",
    "asked",
    "about",
    "delivery",
    "window",
    "before",
    "after",
    "noon",
    "evening",
    "package",
    "arrived",
    "damaged",
    "intact",
    "refund",
    "issued",
    "pending",
    "approved",
    "declined",
    "card",
    "payment",
    "bank",
    "transfer",
    "invoice",
    "number",
    "reference",
    "discount",
    "code",
    "applied",
    "expired",
    "valid",
    "until",
    "end",
    "of",
    "month",
    "size",
    "colour",
    "blue",
    "red",
    "green",
    "black",
    "white",
    "large",
    "small",
    "medium",
    "extra",
    "item",
    "returned",
    "exchange",
    "requested",
    "support",
    "ticket",
    "opened",
    "closed",
    "resolved",
    "escalated",
    "priority",
    "low",
    "high",
    "normal",
    "note",
    "added",
    "by",
    "agent",
    "system",
    "automatic",
    "retry",
    "failed",
    "succeeded",
    "address",
    "changed",
    "street",
    "city",
    "postal",
    "region",
    "phone",
    "email",
    "confirmed",
    "newsletter",
    "subscribed",
    "unsubscribed",
    "review",
    "stars",
    "great",
    "product",
    "quality",
    "fast",
    "slow",
    "shipping",
    "again",
    "would",
    "buy",
    "recommend",
    "friends",
    "and",
    "family",
    "with",
    "for",
    "in",
    "on",
    "at",
    "to",
    "a",
    "is",
    "not",
    "yet",
];

/// One JSON event of exactly `size` bytes (cut short when `size` is below its fixed
/// fields), and where its sequence number is.
fn json_event(rng: &mut XorShift, size: usize) -> (Vec<u8>, Option<usize>) {
    let mut s = String::with_capacity(size + 64);
    let _ = write!(
        s,
        "{{\"event_id\":\"{:016x}{:016x}\",\"seq\":\"",
        rng.next(),
        rng.next()
    );
    let seq_at = s.len();
    s.push_str(&"0".repeat(SEQ_DIGITS));
    let _ = write!(
        s,
        "\",\"ts_ms\":{},\"user_id\":\"user-{}\",\"session\":\"{:012x}\",\"country\":\"{}\",\
         \"device\":\"{}\",\"event\":\"{}\",\"amount_cents\":{},\"currency\":\"EUR\",\
         \"page\":\"/{}/{}/{}\",\"text\":\"",
        1_790_000_000_000 + rng.below(86_400_000),
        rng.below(100_000),
        rng.next() & 0xFFFF_FFFF_FFFF,
        rng.pick(COUNTRIES),
        rng.pick(DEVICES),
        rng.pick(EVENTS),
        rng.below(100_000),
        rng.pick(WORDS),
        rng.pick(WORDS),
        rng.below(10_000),
    );
    let close = "\"}";
    while s.len() + close.len() < size {
        let w = rng.pick(WORDS);
        let room = size - close.len() - s.len();
        if w.len() < room {
            s.push_str(w);
            s.push(' ');
        } else {
            s.push_str(&".".repeat(room));
        }
    }
    s.push_str(close);
    let mut bytes = s.into_bytes();
    bytes.truncate(size);
    let seq_at = (seq_at + SEQ_DIGITS <= bytes.len()).then_some(seq_at);
    (bytes, seq_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_payloads_are_wire_format_events_of_about_the_size() -> anyhow::Result<()> {
        let p = Payloads::new(PayloadKind::Avro, 1024)?;
        let schema = apache_avro::Schema::parse_str(crate::avro::SCHEMA)?;
        let (a, b) = (p.get(0), p.get(1));
        assert_ne!(a, b);
        for v in [&a, &b] {
            assert_eq!(&v[..5], &[0, 0, 0, 0, 1], "magic byte and schema id 1");
            assert!((1000..=1030).contains(&v.len()), "{}", v.len());
            let mut payload = &v[5..];
            apache_avro::from_avro_datum(&schema, &mut payload, None)?;
            assert!(payload.is_empty(), "the whole payload is one record");
        }
        Ok(())
    }

    #[test]
    fn json_payloads_have_the_size_and_are_unique() -> anyhow::Result<()> {
        let p = Payloads::new(PayloadKind::Json, 1024).expect("pool");
        let a = p.get(7);
        let b = p.get(7 + POOL as u64);
        assert_eq!(a.len(), 1024);
        assert_ne!(a, b, "the sequence number makes repeats of the pool unique");
        let v: serde_json::Value = serde_json::from_slice(&a)?;
        assert_eq!(v["seq"].as_str(), Some("0000000007"));
        assert_eq!(
            Payloads::new(PayloadKind::Json, 20)
                .expect("pool")
                .get(1)
                .len(),
            20
        );
        assert_eq!(
            Payloads::new(PayloadKind::Random, 100)
                .expect("pool")
                .get(3)
                .len(),
            100
        );
        Ok(())
    }
}
