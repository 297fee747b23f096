-- Records of a typed topic that did not decode: they land in the same table, with
-- their bytes in `value` and the reason in `typed_error`.
SELECT "partition", "offset", "timestamp", typed_error
FROM kafka.orders
WHERE typed_error IS NOT NULL
ORDER BY "partition", "offset";
