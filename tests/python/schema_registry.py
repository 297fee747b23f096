"""Confluent's own Python client against Floe's schema registry and Kafka listener.

Usage: schema_registry.py BOOTSTRAP REGISTRY_URL

Produces and consumes Avro, Protobuf and JSON Schema records with confluent-kafka's
serializers (which register their schemas), evolves a subject, is refused an
incompatible version, uses references, modes and deletes. Prints one JSON line with what
it saw; tests/tests/schema_registry.rs asserts on it.
"""

import json
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import (
    Schema,
    SchemaReference,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import (
    ProtobufDeserializer,
    ProtobufSerializer,
)
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

BOOTSTRAP, REGISTRY = sys.argv[1], sys.argv[2]
N = 20
out = {}
sr = SchemaRegistryClient({"url": REGISTRY})


def error_code(fn):
    """The Confluent error code a registry call fails with, or None."""
    try:
        fn()
    except SchemaRegistryError as e:
        return e.error_code
    return None


def roundtrip(topic, serializer, deserializer, values):
    """Produces values through serializer, consumes them through deserializer."""
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    for i, v in enumerate(values):
        ctx = SerializationContext(topic, MessageField.VALUE)
        p.produce(topic, key=str(i).encode(), value=serializer(v, ctx))
    assert p.flush(30) == 0, "produce did not finish"
    c = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": "sr-" + topic,
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    got = []
    deadline = time.time() + 60
    while len(got) < len(values) and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        ctx = SerializationContext(topic, MessageField.VALUE)
        got.append(deserializer(m.value(), ctx))
    c.close()
    return got


# --- Avro: register through the serializer, evolve, refuse, relax ---------------------
ORDER_V1 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "amount", "type": "double"},
        ],
    }
)
avro_values = [{"id": i, "item": f"item-{i}", "amount": i * 1.5} for i in range(N)]
got = roundtrip(
    "orders-avro",
    AvroSerializer(sr, ORDER_V1),
    AvroDeserializer(sr),
    avro_values,
)
out["avro_roundtrip"] = got == avro_values
latest = sr.get_latest_version("orders-avro-value")
out["avro_v1"] = {"version": latest.version, "id": latest.schema_id}

v2 = json.loads(ORDER_V1)
v2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
v2_id = sr.register_schema("orders-avro-value", Schema(json.dumps(v2), "AVRO"))
out["avro_v2"] = {"id": v2_id, "versions": sr.get_versions("orders-avro-value")}
# The same schema again: the same id, no new version.
out["avro_v2_again"] = sr.register_schema("orders-avro-value", Schema(json.dumps(v2), "AVRO"))

bad = json.loads(ORDER_V1)
bad["fields"][2] = {"name": "amount", "type": "string"}
out["avro_incompatible_code"] = error_code(
    lambda: sr.register_schema("orders-avro-value", Schema(json.dumps(bad), "AVRO"))
)
out["avro_test_compat"] = sr.test_compatibility(
    "orders-avro-value", Schema(json.dumps(bad), "AVRO")
)
out["set_none"] = sr.set_compatibility("orders-avro-value", "NONE")
out["subject_level"] = sr.get_compatibility("orders-avro-value")
out["avro_bad_after_none"] = sr.register_schema(
    "orders-avro-value", Schema(json.dumps(bad), "AVRO")
)
out["global_level"] = sr.get_compatibility()
out["invalid_schema_code"] = error_code(
    lambda: sr.register_schema("broken-value", Schema('{"type":"record"}', "AVRO"))
)
out["unknown_subject_code"] = error_code(lambda: sr.get_versions("no-such-subject"))
out["unknown_version_code"] = error_code(
    lambda: sr.get_version("orders-avro-value", 99)
)
out["unknown_id_code"] = error_code(lambda: sr.get_schema(99999))
out["by_id_subjects"] = sorted(
    v.subject for v in sr.get_schema_versions(latest.schema_id)
)
looked_up = sr.lookup_schema("orders-avro-value", Schema(json.dumps(v2), "AVRO"))
out["lookup"] = {"version": looked_up.version, "id": looked_up.schema_id}

# --- References: an Avro type from another subject ------------------------------------
MONEY = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "shop",
        "fields": [{"name": "cents", "type": "long"}, {"name": "currency", "type": "string"}],
    }
)
sr.register_schema("shop.Money", Schema(MONEY, "AVRO"))
PRICED = json.dumps(
    {
        "type": "record",
        "name": "Priced",
        "namespace": "shop",
        "fields": [{"name": "sku", "type": "string"}, {"name": "price", "type": "shop.Money"}],
    }
)
priced = Schema(PRICED, "AVRO", [SchemaReference("shop.Money", "shop.Money", 1)])
sr.register_schema("priced-value", priced)
priced_values = [{"sku": f"s{i}", "price": {"cents": i * 100, "currency": "EUR"}} for i in range(N)]
ser = AvroSerializer(sr, priced, conf={"auto.register.schemas": False, "use.latest.version": True})
got = roundtrip("priced", ser, AvroDeserializer(sr), priced_values)
out["reference_roundtrip"] = got == priced_values
out["referenced_by"] = len(sr._rest_client.get("subjects/shop.Money/versions/1/referencedby"))
out["delete_referenced_code"] = error_code(lambda: sr.delete_version("shop.Money", 1))

# --- Protobuf: a message type built from a descriptor ----------------------------------
fdp = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3")
msg = fdp.message_type.add(name="Order")
F = descriptor_pb2.FieldDescriptorProto
msg.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
msg.field.add(name="item", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
pool = descriptor_pool.DescriptorPool()
pool.Add(fdp)
Order = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
pb_values = [Order(id=i, item=f"pb-{i}") for i in range(N)]
got = roundtrip(
    "orders-proto",
    ProtobufSerializer(Order, sr, {"use.deprecated.format": False}),
    ProtobufDeserializer(Order, {"use.deprecated.format": False}),
    pb_values,
)
out["protobuf_roundtrip"] = [m.item for m in got] == [m.item for m in pb_values]
out["protobuf_type"] = sr.get_latest_version("orders-proto-value").schema.schema_type
TEXT_V2 = 'syntax = "proto3";\npackage shop;\nmessage Order {\n  int64 id = 1;\n  string item = 2;\n  double total = 3;\n}\n'
out["protobuf_text_v2"] = sr.register_schema("orders-proto-value", Schema(TEXT_V2, "PROTOBUF"))
TEXT_BAD = 'syntax = "proto3";\npackage shop;\nmessage Order {\n  int64 id = 1;\n  double item = 2;\n}\n'
out["protobuf_incompatible_code"] = error_code(
    lambda: sr.register_schema("orders-proto-value", Schema(TEXT_BAD, "PROTOBUF"))
)

# --- JSON Schema ------------------------------------------------------------------------
JSON_V1 = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Click",
        "type": "object",
        "properties": {"page": {"type": "string"}, "ms": {"type": "integer"}},
        "required": ["page"],
        "additionalProperties": False,
    }
)
json_values = [{"page": f"/p/{i}", "ms": i} for i in range(N)]
got = roundtrip(
    "clicks-json",
    JSONSerializer(JSON_V1, sr),
    JSONDeserializer(JSON_V1),
    json_values,
)
out["json_roundtrip"] = got == json_values
json_v2 = json.loads(JSON_V1)
json_v2["required"] = ["page", "ms"]
out["json_incompatible_code"] = error_code(
    lambda: sr.register_schema("clicks-json-value", Schema(json.dumps(json_v2), "JSON"))
)

# --- Modes and deletes ------------------------------------------------------------------
sr._rest_client.put("mode/clicks-json-value", body={"mode": "READONLY"})
json_v3 = json.loads(JSON_V1)
json_v3["properties"]["ref"] = {"type": "string"}
out["readonly_code"] = error_code(
    lambda: sr.register_schema("clicks-json-value", Schema(json.dumps(json_v3), "JSON"))
)
sr._rest_client.put("mode/clicks-json-value", body={"mode": "READWRITE"})
out["after_readwrite"] = sr.register_schema(
    "clicks-json-value", Schema(json.dumps(json_v3), "JSON")
)

out["hard_before_soft_code"] = error_code(
    lambda: sr.delete_subject("orders-proto-value", permanent=True)
)
out["soft_deleted"] = sr.delete_subject("orders-proto-value")
out["subjects_after_soft"] = sr.get_subjects()
out["hard_deleted"] = sr.delete_subject("orders-proto-value", permanent=True)
out["subjects"] = sr.get_subjects()
print(json.dumps(out))
