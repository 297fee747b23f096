-- Group configs (Kafka 4's DescribeConfigs / IncrementalAlterConfigs on GROUP resources,
-- such as consumer.session.timeout.ms), postgres flavour. Keep in step with
-- ../sqlite/0003_group_configs.sql. configs: the group's overrides as a JSON object of
-- strings, as topics.configs.
CREATE TABLE group_configs (
    group_id TEXT NOT NULL PRIMARY KEY,
    configs  TEXT NOT NULL
);
