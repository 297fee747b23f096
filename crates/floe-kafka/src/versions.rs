//! The APIs this broker implements and the version range of each.
//!
//! The ranges run from the Kafka 2.1 baseline that Kafka 4.0 keeps (KIP-896) up to the
//! newest version the `kafka-protocol` codecs can decode: what the codec crate reports as
//! an API's valid versions, capped where its codecs stop short (see
//! [`supported_versions`]). Every handler in `floe-server` covers every version in its
//! range (topic ids for Fetch ≥ 13 and Produce ≥ 13).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// The APIs served, in ApiKey order.
pub const SUPPORTED_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DeleteGroups,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::OffsetDelete,
    ApiKey::DescribeCluster,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
    ApiKey::DescribeTopicPartitions,
];

/// The version range served for `key`, or `None` if the API is not served.
pub fn supported_versions(key: ApiKey) -> Option<VersionRange> {
    if SUPPORTED_APIS.contains(&key) {
        let mut r = key.valid_versions();
        // kafka-protocol 0.18 lists these versions as valid but its codecs stop one short;
        // advertising them would make clients that pick the maximum fail to decode.
        // Remove when the codec decodes them.
        r.max = match key {
            ApiKey::OffsetCommit | ApiKey::OffsetFetch => r.max.min(9),
            ApiKey::InitProducerId => r.max.min(5),
            _ => r.max,
        };
        Some(r)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_minimums_match_kip_896() {
        // Spot checks of the Kafka 4.0 baseline: clients older than these are refused by
        // Kafka 4.0 too, so advertising lower would promise versions nobody tests.
        let min = |k| supported_versions(k).map(|r| r.min);
        assert_eq!(min(ApiKey::Produce), Some(3));
        assert_eq!(min(ApiKey::Fetch), Some(4));
        assert_eq!(min(ApiKey::ListOffsets), Some(1));
        assert_eq!(min(ApiKey::ApiVersions), Some(0));
        assert_eq!(min(ApiKey::Metadata), Some(0));
        assert!(supported_versions(ApiKey::SaslHandshake).is_none());
    }
}
