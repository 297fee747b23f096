-- Orders by whether they carry `note`, a field a later schema version added: rows
-- written with the older version read it as null, in the same column.
SELECT value_typed.note IS NOT NULL AS has_note,
       count(*)                     AS orders,
       sum(value_typed.amount)      AS amount
FROM kafka.orders
WHERE typed_error IS NULL
GROUP BY 1
ORDER BY 1;
