//! Decoding a frame into a typed request.
//!
//! The codec crate trusts its input more than a server can: it slices without bounds
//! checks in places and indexes buffers directly. Every decode here therefore runs the
//! cheap checks first (length, API key, version) and the codec under `catch_unwind`, so a
//! malformed frame becomes an [`Error::Malformed`] and never takes the broker down.
//!
//! `catch_unwind` does not cover one failure: the codec's array decoders call
//! `Vec::with_capacity(n)` with the element count `n` read from the wire, before reading a
//! single element. A 45-byte frame announcing a few hundred million elements asks the
//! allocator for tens of gigabytes, and a failed allocation *aborts* the process (found by
//! `fuzz/`; reproducer in `fuzz/regressions/decode_request/`). The codec is therefore fed
//! through `Bounded`, which caps every count it hands out (see there).

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::ops::Range;

use bytes::{Buf, Bytes, TryGetError};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::Decodable;

use crate::versions::supported_versions;
use crate::{Error, Result};

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The API.
    pub api_key: ApiKey,
    /// The request header (version, correlation id, client id).
    pub header: RequestHeader,
    /// The typed body.
    pub body: RequestKind,
}

impl Request {
    /// The API version of the request.
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// The fixed part every request header starts with: api key, version, correlation id.
const FIXED_HEADER: usize = 8;

/// Decodes a frame (without its size prefix) into a [`Request`].
///
/// # Errors
/// [`Error::TooShort`], [`Error::UnknownApiKey`], [`Error::UnsupportedVersion`] (the caller
/// answers ApiVersions with the supported list, as Kafka does) or [`Error::Malformed`].
pub fn decode_request(mut frame: Bytes) -> Result<Request> {
    if frame.len() < FIXED_HEADER {
        return Err(Error::TooShort { len: frame.len() });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| Error::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let range = supported_versions(api_key).ok_or(Error::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    if version < range.min || version > range.max {
        return Err(Error::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: String| Error::Malformed {
        api_key,
        version,
        reason,
    };
    let header_version = api_key.request_header_version(version);
    // First pass: counts are capped, so no allocation exceeds what the frame could fill.
    let mut bounded = Bounded::new(frame.clone());
    let mut decoded = decode_parts(&mut bounded, api_key, version, header_version);
    if decoded.is_ok() && bounded.clamped {
        // It decoded although a value was capped, so every capped value was a plain
        // integer (a timeout, `max_bytes`, ...), not a count: a count over the bytes left
        // fails whether capped or not. The second pass yields the true values and cannot
        // allocate more than the first did.
        decoded = decode_parts(&mut frame, api_key, version, header_version);
    }
    let (header, body, trailing) = decoded.map_err(malformed)?;
    if trailing > 0 {
        // Apache Kafka ignores bytes after the body, and librdkafka 2.12 sends some: its
        // Metadata v13 for all topics carries three zero bytes after the null topics
        // array (`floe topics list`). Refusing them closed the connection.
        tracing::debug!(
            ?api_key,
            version,
            trailing,
            "ignoring bytes after the request body"
        );
    }
    Ok(Request {
        api_key,
        header,
        body,
    })
}

/// Decodes header and body from `buf`; returns them and the number of bytes left over.
fn decode_parts<B: ByteBuf>(
    buf: &mut B,
    api_key: ApiKey,
    version: i16,
    header_version: i16,
) -> Result<(RequestHeader, RequestKind, usize), String> {
    let header = guarded(|| RequestHeader::decode(buf, header_version))
        .map_err(|e| format!("header: {e}"))?;
    let body = guarded(|| decode_body(api_key, buf, version)).map_err(|e| format!("body: {e}"))?;
    Ok((header, body, buf.remaining()))
}

/// [`RequestKind::decode`] for the served APIs, generic over the buffer (the codec's own
/// takes a `Bytes`, which would bypass [`Bounded`]).
fn decode_body<B: ByteBuf>(key: ApiKey, buf: &mut B, version: i16) -> anyhow::Result<RequestKind> {
    use anyhow::Context;
    use kafka_protocol::messages as m;
    macro_rules! served {
        ($($api:ident => $ty:ident),* $(,)?) => {
            match key {
                $(ApiKey::$api => m::$ty::decode(buf, version)
                    .map(RequestKind::$api)
                    .with_context(|| format!("Failed to decode {} v{version} body", stringify!($ty))),)*
                other => Err(anyhow::anyhow!("{other:?} is not served")),
            }
        };
    }
    // Keep in step with `versions::SUPPORTED_APIS` (a test checks).
    served! {
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        SyncGroup => SyncGroupRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DeleteGroups => DeleteGroupsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        OffsetDelete => OffsetDeleteRequest,
        DescribeCluster => DescribeClusterRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        DescribeTopicPartitions => DescribeTopicPartitionsRequest,
    }
}

/// The frame as the codec sees it in the first decoding pass: a [`Bytes`] whose integer
/// reads never return a count larger than the bytes left could hold.
///
/// The codec reads array lengths with the same calls as plain integer fields (`try_get_i32`
/// for `Array`, an unsigned varint made of `try_get_u8` calls for `CompactArray`) and then
/// pre-allocates that many elements. Every element takes at least one byte on the wire, so
/// a count above the bytes left can only end in an error; this buffer hands out such a
/// value capped to *just* above the bytes left. A count then still fails exactly as it would
/// have (not enough bytes), having allocated at most `remaining + 1` elements; a plain
/// integer field merely decodes to a different value in this pass, which is why
/// [`decode_request`] decodes once more from the raw frame when anything was capped.
///
/// - `INT32` (array lengths, `BYTES` lengths and plain fields): a positive value over the
///   bytes left is returned as `remaining + 1`.
/// - Unsigned varints (compact array/string/bytes lengths, which are `n + 1`, tagged field
///   counts, tags and tag sizes; request bodies use no varint for plain fields): a value
///   over `remaining + 2` is handed out as `remaining + 2`, re-encoded in the same number of
///   bytes (varints may be padded with `0x80` bytes), so the codec consumes exactly what it
///   would have. Only varints of two bytes or more are touched (a one-byte count cannot
///   allocate much), which leaves every canonical `BOOLEAN` (also read with `try_get_u8`)
///   alone.
struct Bounded {
    buf: Bytes,
    /// Length of the whole frame, to turn `remaining` into an offset.
    len: usize,
    /// Whether any value was capped.
    clamped: bool,
    /// A capped varint being handed out: offset of its first byte, its bytes, its length.
    varint: Option<(usize, [u8; 5], usize)>,
}

impl Bounded {
    fn new(buf: Bytes) -> Self {
        Self {
            len: buf.len(),
            buf,
            clamped: false,
            varint: None,
        }
    }

    fn offset(&self) -> usize {
        self.len - self.buf.len()
    }
}

impl Buf for Bounded {
    fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.buf.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.buf.advance(cnt);
    }

    fn try_get_i32(&mut self) -> Result<i32, TryGetError> {
        let v = self.buf.try_get_i32()?;
        let left = self.buf.remaining();
        match usize::try_from(v) {
            Ok(n) if n > left => {
                self.clamped = true;
                // left < n <= i32::MAX, so left + 1 fits.
                Ok(i32::try_from(left + 1).unwrap_or(v))
            }
            _ => Ok(v),
        }
    }

    fn try_get_u8(&mut self) -> Result<u8, TryGetError> {
        let at = self.offset();
        if let Some((start, bytes, n)) = self.varint {
            if at > start && at < start + n {
                // The rest of a varint already looked at: never re-read from the middle
                // (a 0x80 run would otherwise be taken for new varints and capped out of
                // step with the codec, handing it a garbled, unbounded count).
                self.buf.try_get_u8()?;
                return Ok(bytes[at - start]);
            }
            self.varint = None;
        }
        // Read ahead the varint that may start here, exactly as the codec's
        // `UnsignedVarInt` does: at most five bytes, the last without a continuation bit.
        let chunk = self.buf.chunk();
        let mut bytes = [0u8; 5];
        let mut value: u32 = 0;
        let mut n = 0;
        let mut complete = false;
        for (i, &b) in chunk.iter().take(5).enumerate() {
            bytes[i] = b;
            value |= u32::from(b & 0x7f) << (i * 7);
            n = i + 1;
            if b < 0x80 {
                complete = true;
                break;
            }
        }
        complete |= n == 5;
        if n > 1 {
            let limit = (chunk.len() - n).saturating_add(2);
            if complete && usize::try_from(value).is_ok_and(|v| v > limit) {
                // limit < value <= u32::MAX, so the cap fits (and fits in n bytes).
                let capped = u32::try_from(limit).unwrap_or(value);
                for (i, byte) in bytes.iter_mut().enumerate().take(n) {
                    // Masked to seven bits, so the cast cannot truncate.
                    let group = ((capped >> (i * 7)) & 0x7f) as u8;
                    *byte = if i + 1 < n { group | 0x80 } else { group };
                }
                self.clamped = true;
            }
            self.varint = Some((at, bytes, n));
            self.buf.advance(1);
            return Ok(bytes[0]);
        }
        self.buf.try_get_u8()
    }
}

impl ByteBuf for Bounded {
    fn peek_bytes(&mut self, r: Range<usize>) -> Bytes {
        self.buf.peek_bytes(r)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.buf.get_bytes(size)
    }
}

/// Runs codec code, turning a panic inside it into an error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "decoder panicked: {}",
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = 7;
        header.client_id = Some(StrBytes::from_static_str("t"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_valid_request() {
        let frame = encode(ApiKey::Metadata, 12, &MetadataRequest::default());
        let req = decode_request(frame).unwrap();
        assert_eq!(req.api_key, ApiKey::Metadata);
        assert_eq!(req.header.correlation_id, 7);
        assert!(matches!(req.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn rejects_unknown_key_and_version() {
        let mut frame = encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).to_vec();
        frame[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(
            decode_request(frame.clone().into()),
            Err(Error::UnknownApiKey {
                api_key: 999,
                correlation_id: 7
            })
        ));
        frame[0..2].copy_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
        frame[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(
            decode_request(frame.into()),
            Err(Error::UnsupportedVersion {
                version: 99,
                correlation_id: 7,
                ..
            })
        ));
    }

    #[test]
    fn every_truncation_of_a_request_is_an_error_not_a_panic() {
        let frame = encode(ApiKey::Metadata, 12, &MetadataRequest::default());
        for len in 0..frame.len() {
            assert!(
                decode_request(frame.slice(0..len)).is_err(),
                "prefix of {len} bytes"
            );
        }
    }

    /// Found by `fuzz/` (`fuzz/regressions/decode_request/listoffsets-array-len-oom`): a
    /// ListOffsets v1 frame whose topic count (0x2d657a66) made the codec pre-allocate
    /// ~61 GB, and abort the process when the allocation failed.
    #[test]
    fn huge_array_count_is_an_error_not_an_abort() {
        const FRAME: &[u8] = b"\x00\x02\x00\x01\x00\x00\x00\x01\x00\x09suz-ezfed\x09suz-ezfed\
            \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        assert!(matches!(
            decode_request(Bytes::from_static(FRAME)),
            Err(Error::Malformed {
                api_key: ApiKey::ListOffsets,
                version: 1,
                ..
            })
        ));
        // The same with the largest count an INT32 can carry.
        let mut frame = encode(ApiKey::Metadata, 4, &MetadataRequest::default()).to_vec();
        let n = frame.len();
        frame[n - 5..n - 1].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_request(frame.into()).is_err());
    }

    /// Found by `fuzz/` against the first version of [`Bounded`]: a Fetch v12 frame with a
    /// varint padded by a run of 0x80 bytes. Bytes inside that varint were taken for the
    /// start of new ones and capped out of step with the codec, which then read a garbled
    /// count and allocated ~41 GB.
    #[test]
    fn varint_padding_run_is_an_error_not_an_abort() {
        const FRAME: &[u8] =
            include_bytes!("../../../fuzz/regressions/decode_request/fetch-misaligned-varint-oom");
        assert!(decode_request(Bytes::from_static(FRAME)).is_err());
    }

    #[test]
    fn huge_compact_array_count_is_an_error_not_an_abort() {
        // Metadata v12 is flexible: topics is a COMPACT_NULLABLE_ARRAY whose length is an
        // unsigned varint (n + 1). 0xffffffff, then the two booleans and no tagged fields.
        let mut frame = encode(ApiKey::Metadata, 12, &MetadataRequest::default()).to_vec();
        let header_len = frame.len() - 4; // default body: topics (1), two booleans, tags
        frame.truncate(header_len);
        frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        assert!(matches!(
            decode_request(frame.into()),
            Err(Error::Malformed { .. })
        ));
        // Padded non-canonically to five bytes, a small count still decodes.
        let mut frame = encode(ApiKey::Metadata, 12, &MetadataRequest::default()).to_vec();
        frame.truncate(header_len);
        frame.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x00, 0, 0, 0]);
        let req = decode_request(frame.into()).unwrap();
        let RequestKind::Metadata(body) = req.body else {
            panic!("not metadata")
        };
        assert_eq!(body.topics, Some(vec![]));
    }

    #[test]
    fn metadata_for_all_topics_decodes() {
        // librdkafka asks for every topic with a null topics array (`floe topics list`).
        for version in [1, 4, 9, 12, 13] {
            let mut req = MetadataRequest::default();
            req.topics = None;
            let frame = encode(ApiKey::Metadata, version, &req);
            let req = decode_request(frame).unwrap_or_else(|e| panic!("v{version}: {e}"));
            let RequestKind::Metadata(body) = req.body else {
                panic!("not metadata")
            };
            assert_eq!(body.topics, None, "v{version}");
        }
    }

    #[test]
    fn large_integer_fields_keep_their_values() {
        // max_bytes, partition_max_bytes and the timeouts exceed the frame length, so the
        // first pass caps them; the decoded request must carry the values sent.
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        use kafka_protocol::messages::{FetchRequest, TopicName};
        for version in [4, 12, 18] {
            let mut p = FetchPartition::default();
            p.partition = 3;
            p.fetch_offset = 1 << 40;
            p.partition_max_bytes = 1 << 20;
            let mut t = FetchTopic::default();
            if version < 13 {
                // From v13 on the topic goes by id (left nil here).
                t.topic = TopicName(StrBytes::from_static_str("orders"));
            }
            t.partitions = vec![p];
            let mut body = FetchRequest::default();
            body.max_wait_ms = 500_000;
            body.min_bytes = 1;
            body.max_bytes = i32::MAX;
            body.topics = vec![t];
            let req = decode_request(encode(ApiKey::Fetch, version, &body)).unwrap();
            let RequestKind::Fetch(got) = req.body else {
                panic!("not fetch")
            };
            assert_eq!(got, body, "v{version}");
        }
    }

    #[test]
    fn every_served_api_has_a_body_decoder() {
        for &key in crate::versions::SUPPORTED_APIS {
            // Some empty bodies are valid (ListGroups v0); what matters is the dispatch.
            if let Err(e) = decode_body(key, &mut Bytes::new(), key.valid_versions().min) {
                assert!(!e.to_string().contains("not served"), "{key:?}");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_ignored_as_by_kafka() {
        let mut frame = encode(ApiKey::Metadata, 12, &MetadataRequest::default()).to_vec();
        frame.push(0);
        assert!(decode_request(frame.into()).is_ok());
        // librdkafka 2.12.1's Metadata v13 for every topic, as captured on the wire.
        const RDKAFKA: &str = "0003000d00000004000772646b61666b6100000000000000";
        let frame: Vec<u8> = (0..RDKAFKA.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&RDKAFKA[i..i + 2], 16).expect("hex"))
            .collect();
        let req = decode_request(frame.into()).expect("librdkafka's request");
        let RequestKind::Metadata(body) = req.body else {
            panic!("not metadata")
        };
        assert_eq!(body.topics, None, "every topic");
    }
}
