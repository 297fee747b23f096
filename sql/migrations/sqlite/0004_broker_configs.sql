-- Dynamic broker configs (AlterConfigs / IncrementalAlterConfigs on BROKER resources, as
-- kafka-configs.sh --entity-type brokers sets them), sqlite flavour. Keep in step with
-- ../postgres/0004_broker_configs.sql. resource: '' for the cluster-wide default
-- (--entity-default), else the broker's node id. configs: a JSON object of strings, as
-- topics.configs.
CREATE TABLE broker_configs (
    resource TEXT NOT NULL PRIMARY KEY,
    configs  TEXT NOT NULL
);
