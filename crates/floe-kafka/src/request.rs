//! Decoding a frame into a typed request.
//!
//! The codec crate trusts its input more than a server can: it slices without bounds
//! checks in places and indexes buffers directly. Every decode here therefore runs the
//! cheap checks first (length, API key, version) and the codec under `catch_unwind`, so a
//! malformed frame becomes an [`Error::Malformed`] and never takes the broker down.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
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
    let header = guarded(|| RequestHeader::decode(&mut frame, header_version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body = guarded(|| RequestKind::decode(api_key, &mut frame, version))
        .map_err(|e| malformed(format!("body: {e}")))?;
    if frame.has_remaining() {
        // Kafka ignores nothing silently either: trailing bytes mean the client and broker
        // disagree about the schema.
        return Err(malformed(format!("{} trailing bytes", frame.remaining())));
    }
    Ok(Request {
        api_key,
        header,
        body,
    })
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

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut frame = encode(ApiKey::Metadata, 12, &MetadataRequest::default()).to_vec();
        frame.push(0);
        assert!(matches!(
            decode_request(frame.into()),
            Err(Error::Malformed { .. })
        ));
    }
}
