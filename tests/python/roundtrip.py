"""Produce and consume with kafka-python (a second client library, in another language).

Usage: roundtrip.py BOOTSTRAP TOPIC N. Prints one JSON line with what it saw; the Rust test
asserts on it."""
import json
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
futures = [
    producer.send(
        topic,
        key=f"k{i}".encode(),
        value=f"v{i}".encode(),
        headers=[("h", str(i).encode())],
        timestamp_ms=1_650_000_000_000 + i,
    )
    for i in range(n)
]
producer.flush(timeout=30)
acked = [f.get(timeout=30).offset for f in futures]
producer.close()

consumer = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id=f"py-{topic}",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=20000,
)
seen = []
for msg in consumer:
    seen.append([msg.offset, msg.key.decode(), msg.value.decode(), [[k, v.decode()] for k, v in msg.headers], msg.timestamp])
    if len(seen) == n:
        break
consumer.commit()
tp = TopicPartition(topic, 0)
committed = consumer.committed(tp)
consumer.close()
print(json.dumps({"acked": acked, "seen": seen, "committed": committed}))
