-- Records per minute of event time, over the whole topic (lake and tail).
SELECT date_trunc('minute', "timestamp") AS minute,
       count(*) AS records
FROM orders
GROUP BY 1
ORDER BY 1;
