"""confluent-kafka against a compacted topic, as librdkafka's test 0011 uses one.

Usage: compacted_topic.py BOOTSTRAP TOPIC

TOPIC exists with cleanup.policy=delete. The script APPENDs `compact` to its
cleanup.policy (IncrementalAlterConfigs) and produces 100 records in one batch of which
every tenth has no key, then 2,000 keyless records in one batch; SUBTRACTs `delete` and tries DeleteRecords on the compact-only
topic; tries to SUBTRACT `compact` too, which would leave no policy; then goes back to
`delete` and produces one keyless record.
Prints one JSON line with what it saw; tests/tests/topic_configs.rs asserts on it.
"""

import json
import sys

from confluent_kafka import (
    OFFSET_END,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

BOOTSTRAP, TOPIC = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
resource = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
out = {}


def alter(policy, op):
    """Applies `op` with `policy` to cleanup.policy; returns the described value."""
    r = ConfigResource(
        ConfigResource.Type.TOPIC,
        TOPIC,
        incremental_configs=[
            ConfigEntry("cleanup.policy", policy, incremental_operation=op)
        ],
    )
    for f in admin.incremental_alter_configs([r]).values():
        f.result(timeout=30)
    described = admin.describe_configs([resource])[resource].result(timeout=30)
    return described["cleanup.policy"].value


def produce(keyless_every, n):
    """Produces `n` records in one batch; returns {error name: count}."""
    seen = {}

    def report(err, _msg):
        name = "ok" if err is None else KafkaError(err.code()).name()
        seen[name] = seen.get(name, 0) + 1

    # One batch: nothing is sent before flush(), and the batch holds all n records.
    p = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "linger.ms": 1000,
            "batch.num.messages": 10000,
            "retries": 0,
        }
    )
    for i in range(n):
        key = None if i % keyless_every == 0 else f"k{i}"
        p.produce(TOPIC, key=key, value=f"v{i}", partition=0, on_delivery=report)
    p.flush(30)
    return seen


def error_name(fn):
    """The Kafka error `fn` fails with, or "ok"."""
    try:
        fn()
        return "ok"
    except KafkaException as e:
        return e.args[0].name()


def delete_records():
    tp = TopicPartition(TOPIC, 0, OFFSET_END)
    for f in admin.delete_records([tp]).values():
        f.result(timeout=30)


out["appended"] = alter("compact", AlterConfigOpType.APPEND)
out["compacted"] = produce(10, 100)
out["many_keyless"] = produce(1, 2000)
out["compact_only"] = alter("delete", AlterConfigOpType.SUBTRACT)
out["delete_records"] = error_name(delete_records)
out["emptied"] = error_name(lambda: alter("compact", AlterConfigOpType.SUBTRACT))
alter("delete", AlterConfigOpType.APPEND)
out["subtracted"] = alter("compact", AlterConfigOpType.SUBTRACT)
out["deleting"] = produce(1, 1)
print(json.dumps(out))
