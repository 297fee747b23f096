//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and read-only
//! broker configs).

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_common::topic::TOPIC_CONFIG_KEYS;
use floe_kafka::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::admin::topic_error_code;
use super::sb;
use crate::broker::{Broker, TopicError};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
// Config sources (DescribeConfigs v1+).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
// Config types (v3+).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// The type Kafka declares for a topic config or for its broker-level name (`log.` and
/// the topic key), so that clients that parse by type (the Java AdminClient's
/// `ConfigEntry.type()`) see what they would see from Kafka.
fn config_type(key: &str) -> i8 {
    match key.strip_prefix("log.").unwrap_or(key) {
        "max.message.bytes"
        | "message.max.bytes"
        | "segment.bytes"
        | "num.partitions"
        | "socket.request.max.bytes"
        | "offsets.retention.minutes"
        | "producer.id.expiration.ms" => TYPE_INT,
        "cleanup.policy" => TYPE_LIST,
        "message.timestamp.type"
        | "lake.partition.by"
        | "lake.key.schema"
        | "lake.key.subject"
        | "lake.value.schema"
        | "lake.value.subject" => TYPE_STRING,
        "auto.create.topics.enable" => TYPE_BOOLEAN,
        _ => TYPE_LONG,
    }
}

pub(super) fn describe(
    broker: &Arc<Broker>,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let wanted = |k: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
            };
            let entries: Vec<(String, String, i8)> = match res.resource_type {
                TOPIC => match broker.topic(&res.resource_name) {
                    None => {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(sb(&format!(
                                "topic '{}' does not exist",
                                res.resource_name.as_str()
                            ))))
                    }
                    Some(topic) => {
                        let overrides = topic.overrides.read().clone();
                        topic
                            .config
                            .read()
                            .entries()
                            .into_iter()
                            .map(|(k, v)| {
                                let src = if overrides.contains_key(k) {
                                    DYNAMIC_TOPIC_CONFIG
                                } else {
                                    DEFAULT_CONFIG
                                };
                                (k.to_string(), v, src)
                            })
                            .collect()
                    }
                },
                BROKER => broker_entries(broker),
                other => {
                    return base
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(sb(&format!(
                            "resource type {other} is not supported"
                        ))))
                }
            };
            let configs = entries
                .into_iter()
                .filter(|(k, _, _)| wanted(k))
                .map(|(k, v, src)| {
                    let mut e = DescribeConfigsResourceResult::default()
                        .with_name(sb(&k))
                        .with_value(Some(sb(&v)))
                        .with_read_only(res.resource_type == BROKER)
                        .with_config_source(src);
                    if version >= 3 {
                        e.config_type = config_type(&k);
                        if req.include_documentation {
                            e.documentation = TOPIC_CONFIG_KEYS
                                .iter()
                                .find(|(n, _)| *n == k)
                                .map(|(_, d)| StrBytes::from_static_str(d));
                        }
                    }
                    if req.include_synonyms {
                        e.synonyms = vec![DescribeConfigsSynonym::default()
                            .with_name(sb(&k))
                            .with_value(Some(sb(&v)))
                            .with_source(src)];
                    }
                    e
                })
                .collect();
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_entries(broker: &Broker) -> Vec<(String, String, i8)> {
    let c = &broker.config;
    let mut v: Vec<(String, String, i8)> = broker
        .topic_defaults
        .entries()
        .into_iter()
        .map(|(k, val)| {
            (
                // Kafka's broker-level names for the topic defaults.
                if k == "max.message.bytes" {
                    "message.max.bytes".to_string()
                } else {
                    format!("log.{k}")
                },
                val,
                STATIC_BROKER_CONFIG,
            )
        })
        .collect();
    v.push((
        "auto.create.topics.enable".into(),
        c.kafka.auto_create_topics.to_string(),
        STATIC_BROKER_CONFIG,
    ));
    v.push((
        "num.partitions".into(),
        c.kafka.default_partitions.to_string(),
        STATIC_BROKER_CONFIG,
    ));
    v.push((
        "socket.request.max.bytes".into(),
        c.kafka.max_request_bytes.to_string(),
        STATIC_BROKER_CONFIG,
    ));
    v.push((
        "offsets.retention.minutes".into(),
        (c.groups.offsets_retention.as_secs() / 60).to_string(),
        STATIC_BROKER_CONFIG,
    ));
    v.push((
        "producer.id.expiration.ms".into(),
        c.log.producer_id_expiration.as_millis().to_string(),
        STATIC_BROKER_CONFIG,
    ));
    v
}

fn refuse_non_topic(resource_type: i8) -> Option<(ResponseError, String)> {
    (resource_type != TOPIC).then(|| {
        (
            ResponseError::InvalidRequest,
            format!("only topic configs can be altered (resource type {resource_type})"),
        )
    })
}

fn outcome(r: Result<(), TopicError>, name: &str) -> (i16, Option<StrBytes>) {
    match r {
        Ok(()) => (0, None),
        Err(e) => {
            warn!(topic = %name, error = %e, "config change refused");
            (topic_error_code(&e).code(), Some(sb(&e.to_string())))
        }
    }
}

pub(super) async fn alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let base = AlterResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if let Some((e, msg)) = refuse_non_topic(res.resource_type) {
            responses.push(
                base.with_error_code(e.code())
                    .with_error_message(Some(sb(&msg))),
            );
            continue;
        }
        // AlterConfigs replaces the whole set of overrides.
        let overrides: BTreeMap<String, String> = res
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let (code, msg) = outcome(
            broker
                .set_topic_overrides(&res.resource_name, overrides, req.validate_only)
                .await,
            &res.resource_name,
        );
        responses.push(base.with_error_code(code).with_error_message(msg));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(super) async fn incremental_alter(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let base = IncResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if let Some((e, msg)) = refuse_non_topic(res.resource_type) {
            responses.push(
                base.with_error_code(e.code())
                    .with_error_message(Some(sb(&msg))),
            );
            continue;
        }
        let Some(topic) = broker.topic(&res.resource_name) else {
            responses.push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
            continue;
        };
        let mut overrides = topic.overrides.read().clone();
        let mut bad = None;
        for c in &res.configs {
            let key = c.name.to_string();
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            match c.config_operation {
                OP_SET => {
                    overrides.insert(key, value);
                }
                OP_DELETE => {
                    overrides.remove(&key);
                }
                // cleanup.policy is the only list config, and "delete" its only value.
                OP_APPEND | OP_SUBTRACT if key == "cleanup.policy" && value == "delete" => {
                    if c.config_operation == OP_APPEND {
                        overrides.insert(key, value);
                    } else {
                        bad = Some(
                            "cannot remove 'delete' from cleanup.policy: it is the only policy"
                                .to_string(),
                        );
                    }
                }
                op => bad = Some(format!("operation {op} is not valid for {key}")),
            }
        }
        if let Some(msg) = bad {
            warn!(topic = %res.resource_name.as_str(), error = %msg, "config change refused");
            responses.push(
                base.with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(Some(sb(&msg))),
            );
            continue;
        }
        let (code, msg) = outcome(
            broker
                .set_topic_overrides(&res.resource_name, overrides, req.validate_only)
                .await,
            &res.resource_name,
        );
        responses.push(base.with_error_code(code).with_error_message(msg));
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's declared types (`TopicConfig`/`LogConfig`, `ServerConfigs`) for every key
    /// DescribeConfigs returns, topic and broker alike.
    #[test]
    fn every_described_key_has_kafkas_type() {
        let kafka = |key: &str| match key {
            "retention.ms" | "retention.bytes" | "local.retention.ms" | "local.retention.bytes" => {
                TYPE_LONG
            }
            "segment.bytes" | "max.message.bytes" => TYPE_INT,
            "cleanup.policy" => TYPE_LIST,
            "message.timestamp.type" => TYPE_STRING,
            // Floe's own keys: milliseconds and bytes as longs, a transform name as a string.
            "lake.commit.interval.ms" | "lake.commit.bytes" | "lake.snapshot.retention.ms" => {
                TYPE_LONG
            }
            "lake.partition.by" | "lake.key.schema" | "lake.key.subject" | "lake.value.schema"
            | "lake.value.subject" => TYPE_STRING,
            other => panic!("topic key {other} has no expected type here"),
        };
        for (key, _) in TOPIC_CONFIG_KEYS {
            assert_eq!(config_type(key), kafka(key), "{key}");
            let broker_name = if *key == "max.message.bytes" {
                "message.max.bytes".to_string()
            } else {
                format!("log.{key}")
            };
            assert_eq!(config_type(&broker_name), kafka(key), "{broker_name}");
        }
        for (key, expected) in [
            ("auto.create.topics.enable", TYPE_BOOLEAN),
            ("num.partitions", TYPE_INT),
            ("socket.request.max.bytes", TYPE_INT),
            ("offsets.retention.minutes", TYPE_INT),
            ("producer.id.expiration.ms", TYPE_INT),
        ] {
            assert_eq!(config_type(key), expected, "{key}");
        }
    }
}
