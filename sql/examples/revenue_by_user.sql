-- Fields of JSON values: total amount per user.
SELECT json_get_str(CAST(value AS VARCHAR), 'user') AS "user",
       sum(json_get_int(CAST(value AS VARCHAR), 'amount')) AS amount
FROM orders
GROUP BY 1
ORDER BY 1;
