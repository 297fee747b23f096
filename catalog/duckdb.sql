-- DuckDB 1.5 with the iceberg extension: attach Floe's REST catalog.
-- Checked by the test suite (tests/tests/typed_tables.rs through tests/python/typed_topic.py
-- `duckdb`), which loads the extensions from PyPI's duckdb-extension-iceberg,
-- duckdb-extension-avro and duckdb-extension-httpfs packages instead of INSTALL.
INSTALL iceberg;
LOAD iceberg;
ATTACH '' AS floe (TYPE iceberg, ENDPOINT 'http://localhost:8181', AUTHORIZATION_TYPE 'none');
SELECT "partition", count(*) FROM floe.kafka.orders GROUP BY ALL;
-- A typed topic's fields:
SELECT value_typed.item, sum(value_typed.amount) FROM floe.kafka.orders GROUP BY ALL;
