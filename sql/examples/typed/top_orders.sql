-- A typed topic (bound to its registry subject, docs/schema-registry.md): the five
-- largest orders, filtering and sorting on fields of the Avro value.
SELECT value_typed.id     AS id,
       value_typed.item   AS item,
       value_typed.amount AS amount
FROM kafka.orders
WHERE value_typed.amount >= 60
ORDER BY amount DESC
LIMIT 5;
