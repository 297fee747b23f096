-- Records added between two snapshots. Replace :old and :new with snapshot ids from
--   SELECT snapshot_id, committed_at FROM topic_snapshots('orders') ORDER BY committed_at;
SELECT partition, "offset", CAST(value AS VARCHAR) AS value
FROM topic_at('orders', :new)
EXCEPT
SELECT partition, "offset", CAST(value AS VARCHAR) AS value
FROM topic_at('orders', :old)
ORDER BY partition, "offset";
