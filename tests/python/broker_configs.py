"""confluent-kafka setting dynamic broker configs, as kafka-configs.sh --entity-type
brokers and librdkafka's test 0081 do.

Usage: broker_configs.py BOOTSTRAP TOPIC set|reset

set: AlterConfigs on broker 1 (sasl.kerberos.min.time.before.relogin), then
IncrementalAlterConfigs on broker 1 (background.threads SET 9, log.cleanup.policy APPEND
compact); tries a static key and a bad value; describes broker 1 and
TOPIC (which has no overrides); produces a keyless record to TOPIC. (librdkafka refuses
the cluster default's empty resource name itself: the test sets that one.)
reset: DELETE and SUBTRACT them again, and describes broker 1 and TOPIC.

Prints one JSON line; tests/tests/topic_configs.rs asserts on it.
"""

import json
import sys

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)

BOOTSTRAP, TOPIC, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
BROKER = ConfigResource.Type.BROKER
out = {}


def error_name(futures):
    """The Kafka error the futures fail with, or "ok"."""
    try:
        for f in futures.values():
            f.result(timeout=30)
        return "ok"
    except KafkaException as e:
        return e.args[0].name()


def incremental(rtype, name, *ops):
    entries = [ConfigEntry(k, v, incremental_operation=op) for k, v, op in ops]
    r = ConfigResource(rtype, name, incremental_configs=entries)
    return error_name(admin.incremental_alter_configs([r]))


def describe(rtype, name, keys):
    r = ConfigResource(rtype, name)
    entries = admin.describe_configs([r])[r].result(timeout=30)
    return {
        k: [e.value, ConfigSource(e.source).name, e.is_read_only]
        for k, e in entries.items()
        if keys is None or k in keys
    }


SET, APPEND = AlterConfigOpType.SET, AlterConfigOpType.APPEND
DELETE, SUBTRACT = AlterConfigOpType.DELETE, AlterConfigOpType.SUBTRACT
watched = [
    "background.threads",
    "log.cleanup.policy",
    "log.retention.ms",
    "sasl.kerberos.min.time.before.relogin",
]
if MODE == "set":
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)  # alter_configs, as 0081 uses it
    legacy = ConfigResource(
        BROKER, "1", set_config={"sasl.kerberos.min.time.before.relogin": "58000"}
    )
    out["legacy"] = error_name(admin.alter_configs([legacy]))
    out["broker"] = incremental(
        BROKER,
        "1",
        ("background.threads", "9", SET),
        ("log.cleanup.policy", "compact", APPEND),
    )
    out["static_key"] = incremental(BROKER, "1", ("log.dirs", "/tmp", SET))
    out["bad_value"] = incremental(BROKER, "1", ("background.threads", "0", SET))

    seen = {}

    def report(err, _msg):
        seen["keyless"] = "ok" if err is None else KafkaError(err.code()).name()

    p = Producer({"bootstrap.servers": BOOTSTRAP, "retries": 0})
    p.produce(TOPIC, value=b"no key", on_delivery=report)
    p.flush(30)
    out.update(seen)
else:
    out["broker"] = incremental(
        BROKER,
        "1",
        ("background.threads", "", DELETE),
        ("log.cleanup.policy", "compact", SUBTRACT),
        ("sasl.kerberos.min.time.before.relogin", "", DELETE),
    )
out["described_broker"] = describe(BROKER, "1", watched)
out["described_topic"] = describe(
    ConfigResource.Type.TOPIC, TOPIC, ["cleanup.policy", "retention.ms"]
)
print(json.dumps(out, default=str))
