-- Floe metadata store, SQLite flavour. Keep in step with ../postgres/0001_init.sql.

-- One row per topic. topic_id is the Kafka topic UUID as hyphenated text;
-- configs is a JSON object of string -> string.
CREATE TABLE topics (
    name          TEXT    NOT NULL PRIMARY KEY,
    topic_id      TEXT    NOT NULL UNIQUE,
    partitions    INTEGER NOT NULL CHECK (partitions >= 0),
    configs       TEXT    NOT NULL DEFAULT '{}',
    created_at_ms INTEGER NOT NULL
);

-- Committed consumer-group offsets (OffsetCommit / OffsetFetch).
CREATE TABLE committed_offsets (
    group_id            TEXT    NOT NULL,
    topic               TEXT    NOT NULL,
    partition_index     INTEGER NOT NULL,
    committed_offset    INTEGER NOT NULL,
    leader_epoch        INTEGER NOT NULL,
    metadata            TEXT,
    commit_timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition_index)
);

CREATE INDEX committed_offsets_topic ON committed_offsets (topic);

-- Producer-id allocator: a single row holding the next unallocated id.
CREATE TABLE producer_id_allocator (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    next_id INTEGER NOT NULL CHECK (next_id >= 0)
);

INSERT INTO producer_id_allocator (id, next_id) VALUES (1, 0);
