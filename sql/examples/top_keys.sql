-- The ten busiest keys.
SELECT CAST(key AS VARCHAR) AS key,
       count(*) AS records
FROM orders
GROUP BY 1
ORDER BY records DESC, key
LIMIT 10;
