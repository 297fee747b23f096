-- Lag of every consumer group, per partition: records produced but not yet consumed.
SELECT g.group_id,
       g.topic,
       g.partition,
       p.high_watermark - g.committed_offset AS lag
FROM system.group_offsets AS g
JOIN system.partitions AS p
  ON p.topic = g.topic AND p.partition = g.partition
ORDER BY lag DESC, g.group_id, g.topic, g.partition;
