-- The schema registry (Confluent REST API, crates/floe-registry), sqlite flavour. Keep in
-- step with ../postgres/0002_schema_registry.sql.

-- One row per distinct schema: the same text, type and references registered under two
-- subjects get the same global id, as in Confluent's registry. fingerprint is the SHA-256
-- of the type, the canonical text and the references, hex.
CREATE TABLE registry_schemas (
    id          INTEGER NOT NULL PRIMARY KEY,
    schema_type TEXT    NOT NULL,
    schema_text TEXT    NOT NULL,
    refs        TEXT    NOT NULL DEFAULT '[]',
    fingerprint TEXT    NOT NULL UNIQUE
);

-- Versions of a subject. deleted: 0 live, 1 soft-deleted (hidden unless asked for).
CREATE TABLE registry_versions (
    subject   TEXT    NOT NULL,
    version   INTEGER NOT NULL CHECK (version > 0),
    schema_id INTEGER NOT NULL REFERENCES registry_schemas (id),
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);

CREATE INDEX registry_versions_schema ON registry_versions (schema_id);

-- Compatibility level and mode, per subject; the empty subject is the global setting.
-- NULL: not set here (the global one, or the default, applies).
CREATE TABLE registry_config (
    subject       TEXT NOT NULL PRIMARY KEY,
    compatibility TEXT,
    mode          TEXT
);

-- Schema-id allocator: a single row holding the next unallocated id (ids start at 1).
CREATE TABLE registry_id_allocator (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    next_id INTEGER NOT NULL CHECK (next_id > 0)
);

INSERT INTO registry_id_allocator (id, next_id) VALUES (1, 1);
