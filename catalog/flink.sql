-- Flink SQL with the Iceberg 1.10 runtime: read Floe's tables through its REST catalog.
-- Not run by the test suite (its Iceberg runtime jar is only on Maven Central); see README.md.
CREATE CATALOG floe WITH (
  'type' = 'iceberg',
  'catalog-type' = 'rest',
  'uri' = 'http://localhost:8181'
);
USE CATALOG floe;
SELECT `partition`, COUNT(*) FROM kafka.orders GROUP BY `partition`;
