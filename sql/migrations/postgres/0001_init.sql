-- Floe metadata store, PostgreSQL flavour. Keep in step with ../sqlite/0001_init.sql.
-- Every integer column is BIGINT: the sqlx Any driver decodes them as i64.

-- One row per topic. topic_id is the Kafka topic UUID as hyphenated text;
-- configs is a JSON object of string -> string.
CREATE TABLE topics (
    name          TEXT   NOT NULL PRIMARY KEY,
    topic_id      TEXT   NOT NULL UNIQUE,
    partitions    BIGINT NOT NULL CHECK (partitions >= 0),
    configs       TEXT   NOT NULL DEFAULT '{}',
    created_at_ms BIGINT NOT NULL
);

-- Committed consumer-group offsets (OffsetCommit / OffsetFetch).
CREATE TABLE committed_offsets (
    group_id            TEXT   NOT NULL,
    topic               TEXT   NOT NULL,
    partition_index     BIGINT NOT NULL,
    committed_offset    BIGINT NOT NULL,
    leader_epoch        BIGINT NOT NULL,
    metadata            TEXT,
    commit_timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_index)
);

CREATE INDEX committed_offsets_topic ON committed_offsets (topic);

-- Producer-id allocator: a single row holding the next unallocated id.
-- Allocation is one UPDATE .. RETURNING, so the row lock serialises brokers
-- sharing the database.
CREATE TABLE producer_id_allocator (
    id      BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    next_id BIGINT NOT NULL CHECK (next_id >= 0)
);

INSERT INTO producer_id_allocator (id, next_id) VALUES (1, 0);
