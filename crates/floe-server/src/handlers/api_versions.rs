//! ApiVersions: the version ranges of [`floe_kafka::versions::SUPPORTED_APIS`].

use floe_kafka::versions::{supported_versions, SUPPORTED_APIS};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

/// The response listing every supported API, with `error_code` set (35 when the client
/// asked with a version we do not speak: it then retries with v0, as KIP-511 describes).
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .filter_map(|k| {
            supported_versions(*k).map(|r| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(r.min)
                    .with_max_version(r.max)
            })
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub(super) fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    api_versions_response(0)
}
