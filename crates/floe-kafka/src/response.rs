//! Encoding a typed response into a frame.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::{Error, Result};

/// Encodes `body` as the response to a request of `api_key`/`version` with the given
/// correlation id, size prefix included, ready to write to the socket.
///
/// The response header version follows the API (ApiVersions always uses header v0, which
/// librdkafka depends on).
///
/// # Errors
/// [`Error::Encode`] if the body holds a field the version cannot carry (a broker bug).
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes> {
    let enc_err = |e: anyhow::Error| Error::Encode {
        api_key,
        version,
        reason: e.to_string(),
    };
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0); // size, patched below
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(enc_err)?;
    body.encode(&mut buf, version).map_err(enc_err)?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| Error::Encode {
        api_key,
        version,
        reason: format!("response of {} bytes is too large", buf.len()),
    })?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}
