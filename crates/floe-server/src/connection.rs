//! One client connection: read a frame, decode, dispatch, write the response, in order.
//!
//! Requests on a connection are handled one at a time, as Kafka does (it mutes a channel
//! until its response is sent), so responses can never be reordered. Clients pipeline
//! across connections and partitions, not within one connection's ordering guarantees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use floe_kafka::frame::{read_frame, FrameLimits};
use floe_kafka::request::decode_request;
use floe_kafka::response::encode_response;
use floe_kafka::{ApiKey, Error as WireError, ResponseError, ResponseKind};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::handlers::{api_versions_response, dispatch};
use crate::limits::Limit;

/// Serves `stream` until the peer closes it, sends something unparseable, or the broker
/// shuts down (then the request in progress is finished first).
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let kafka = &broker.config.kafka;
    let limits = FrameLimits {
        max_size: kafka.max_request_bytes,
        idle: Some(kafka.connections_max_idle),
        arrival: kafka.request_arrival_timeout,
    };
    let refused = |limit: Limit| broker.metrics.refusals.count(limit);
    let host = peer.ip().to_string();
    loop {
        let frame = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            f = read_frame(&mut rd, &limits) => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(WireError::FrameTooLarge { size, max }) => {
                refused(Limit::RequestSize);
                warn!(%peer, size, max, "closing connection: request frame over max_request_bytes (socket.request.max.bytes)");
                break;
            }
            Err(WireError::Idle { idle }) => {
                refused(Limit::IdleConnection);
                debug!(%peer, ?idle, "closing idle connection (connections_max_idle)");
                break;
            }
            Err(e @ WireError::FrameTimeout { .. }) => {
                refused(Limit::RequestArrival);
                warn!(%peer, error = %e, "closing connection: request did not arrive in time (request_arrival_timeout)");
                break;
            }
            Err(e) => {
                debug!(%peer, error = %e, "connection ended");
                break;
            }
        };
        // Latency runs from a whole frame in hand to the response flushed.
        let started = Instant::now();
        let (api_key, version, correlation_id, response) = match decode_request(frame) {
            Ok(req) => {
                let (key, v, corr) = (req.api_key, req.version(), req.header.correlation_id);
                (key, v, corr, dispatch(&broker, req, &host).await)
            }
            Err(WireError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                version,
                correlation_id,
            }) => {
                // KIP-511: answer in v0 with the supported ranges so the client can retry.
                debug!(%peer, version, "ApiVersions with a newer version than supported");
                let body = api_versions_response(ResponseError::UnsupportedVersion.code());
                (
                    ApiKey::ApiVersions,
                    0,
                    correlation_id,
                    Some(ResponseKind::ApiVersions(body)),
                )
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: request cannot be handled");
                break;
            }
        };
        let Some(response) = response else {
            broker.metrics.observe_request(api_key, started.elapsed());
            continue;
        };
        let bytes: Bytes = match encode_response(api_key, version, correlation_id, &response) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%peer, error = %e, "closing connection: cannot encode response");
                break;
            }
        };
        let written = write_all(&mut wr, &bytes).await;
        broker.metrics.observe_request(api_key, started.elapsed());
        if let Err(e) = written {
            debug!(%peer, error = %e, "write failed");
            break;
        }
    }
}

async fn write_all<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    bytes: &[u8],
) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}
