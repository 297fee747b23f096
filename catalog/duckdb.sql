-- DuckDB 1.3+ with the iceberg extension: attach Floe's REST catalog.
-- Not run on the machine this was written on (the extension download is not reachable).
INSTALL iceberg;
LOAD iceberg;
ATTACH '' AS floe (TYPE iceberg, ENDPOINT 'http://localhost:8181', AUTHORIZATION_TYPE 'none');
SELECT "partition", count(*) FROM floe.kafka.orders GROUP BY ALL;
