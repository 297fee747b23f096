//! Errors of the protocol layer.

/// What can go wrong reading, decoding or encoding Kafka messages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed.
    #[error("i/o error while {op}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A frame announced a size over the configured cap (or a negative one).
    #[error("frame of {size} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced size.
        size: i64,
        /// Configured cap.
        max: usize,
    },
    /// No frame started within the idle limit (Kafka's `connections.max.idle.ms`).
    #[error("no request for {idle:?}")]
    Idle {
        /// The limit.
        idle: std::time::Duration,
    },
    /// A frame started but did not arrive whole in time.
    #[error("request frame not complete after {arrival:?} ({received} of {} bytes)", size.map_or_else(|| "?".to_owned(), |s| s.to_string()))]
    FrameTimeout {
        /// The limit.
        arrival: std::time::Duration,
        /// Its announced size, if the size prefix arrived.
        size: Option<usize>,
        /// Bytes of it that arrived.
        received: usize,
    },
    /// The frame is too short to hold a request header.
    #[error("frame of {len} bytes is too short for a request header")]
    TooShort {
        /// Frame length.
        len: usize,
    },
    /// The API key is not one Kafka defines, or not one this broker serves.
    #[error("unknown or unsupported api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key sent.
        api_key: i16,
        /// For the error response.
        correlation_id: i32,
    },
    /// The version is outside what this broker implements for that API.
    #[error("unsupported version {version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The API.
        api_key: kafka_protocol::messages::ApiKey,
        /// The version sent.
        version: i16,
        /// For the error response.
        correlation_id: i32,
    },
    /// The body (or header) does not decode for the version given.
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api_key: kafka_protocol::messages::ApiKey,
        /// The version sent.
        version: i16,
        /// What the codec said.
        reason: String,
    },
    /// Encoding a response failed (a bug: a field not valid for the version).
    #[error("cannot encode {api_key:?} v{version} response: {reason}")]
    Encode {
        /// The API.
        api_key: kafka_protocol::messages::ApiKey,
        /// The version.
        version: i16,
        /// What the codec said.
        reason: String,
    },
    /// Decompressing produced records needs memory that other partitions of the request,
    /// or other requests, hold now (retriable).
    #[error("{why}")]
    DecompressionBusy {
        /// Which budget is in use.
        why: &'static str,
    },
    /// The records of one partition alone decompress past the request's budget.
    #[error("the records at byte {position} decompress to more than {limit} bytes")]
    DecompressionTooLarge {
        /// Where the batch starts in the bytes decoded.
        position: usize,
        /// The budget.
        limit: usize,
    },
    /// A record batch's header, length or CRC is wrong.
    #[error(transparent)]
    Batch(#[from] floe_common::batch::BatchError),
    /// A record batch could not be decoded.
    #[error("cannot decode the record batch at byte {position}: {reason}")]
    Records {
        /// Where the batch starts in the bytes decoded.
        position: usize,
        /// The record that does not parse, by its index in the batch, when one is to
        /// blame (rather than the batch's framing or compression).
        record: Option<usize>,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
