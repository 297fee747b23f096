"""Produces Avro records to a typed topic with confluent-kafka's AvroSerializer, as an
existing Confluent-style producer would, then reads the typed table with PyIceberg and
DuckDB.

Usage:
  typed_topic.py produce BOOTSTRAP REGISTRY_URL TOPIC N
      creates TOPIC with lake.value.schema=wire, produces N records with schema v1,
      one record that is not Avro, then N records with v2 (adds an optional "note").
  typed_topic.py produce-json BOOTSTRAP REGISTRY_URL TOPIC N
      creates TOPIC with lake.value.schema=wire and produces N records with
      confluent-kafka's JSONSerializer.
  typed_topic.py produce-proto BOOTSTRAP REGISTRY_URL TOPIC N
      creates TOPIC with lake.value.schema=wire and produces N records with
      confluent-kafka's ProtobufSerializer (shop.Payment, built from a descriptor whose
      first message is another, shop.Refund).
  typed_topic.py produce-shipments BOOTSTRAP REGISTRY_URL TOPIC N VERSION BASE
      produces N Protobuf records of shop.Shipment with ProtobufSerializer, ids and
      cents BASE.., in version 1 (cents = 2, parcel = 3 {sku = 1}) or version 2, which
      renames fields 2, 3 and 3.1 (amount_cents, box {code}) and adds `string cents = 4`.
  typed_topic.py read-renamed HTTP_URL TOPIC
      reads kafka.TOPIC through the REST catalog; prints value_typed's fields, the sum
      of amount_cents, the count of box.code, and the ids amount_cents had in every schema.
  typed_topic.py duckdb HTTP_URL SQL
      runs SQL in DuckDB with Floe's REST catalog attached as `floe` (its iceberg, avro
      and httpfs extensions from PyPI); prints the rows.
  typed_topic.py read HTTP_URL TOPIC
      reads kafka.TOPIC through the REST catalog; prints the typed column's sums.
  typed_topic.py read-widened HTTP_URL TOPIC
      reads kafka.TOPIC (value_typed.qty, value_typed.amount) through the REST catalog;
      prints their types, sums, and the field ids they had in every schema of the table.
Prints one JSON line.
"""

import base64
import json
import sys
import time

V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
V2 = json.loads(json.dumps(V1))
V2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})


def produce(bootstrap, registry, topic, n):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, 1, 1, config={"lake.value.schema": "wire"})]
    )
    futures[topic].result(30)
    sr = SchemaRegistryClient({"url": registry})
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    v1 = AvroSerializer(sr, json.dumps(V1))
    for i in range(n):
        rec = {"id": i, "item": f"item-{i}", "amount": 1.5 * i, "tags": ["a"] * (i % 3),
               "placed": 1_700_000_000_000 + i}
        p.produce(topic, value=v1(rec, ctx))
    p.produce(topic, value=b"not avro at all")
    v2 = AvroSerializer(sr, json.dumps(V2))
    for i in range(n, 2 * n):
        rec = {"id": i, "item": f"item-{i}", "amount": 1.5 * i, "tags": [],
               "placed": 1_700_000_000_000 + i, "note": f"n{i}"}
        p.produce(topic, value=v2(rec, ctx))
    assert p.flush(30) == 0
    print(json.dumps({"produced": 2 * n + 1, "versions": sr.get_versions(f"{topic}-value")}))


CLICK = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Click",
    "type": "object",
    "properties": {
        "page": {"type": "string"},
        "ms": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "ref": {"type": ["string", "null"]},
    },
    "required": ["page", "ms", "at"],
}


def produce_json(bootstrap, registry, topic, n):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"lake.value.schema": "wire"})])[topic].result(30)
    sr = SchemaRegistryClient({"url": registry})
    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = JSONSerializer(json.dumps(CLICK), sr)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        rec = {"page": f"/p/{i % 5}", "ms": i, "at": f"2026-12-07T06:00:{i % 60:02d}Z"}
        if i % 2:
            rec["ref"] = "search"
        p.produce(topic, value=serialize(rec, ctx))
    assert p.flush(30) == 0
    print(json.dumps({"produced": n}))


def produce_proto(bootstrap, registry, topic, n):
    from confluent_kafka.admin import AdminClient, NewTopic
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf import timestamp_pb2

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"lake.value.schema": "wire"})])[topic].result(30)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="shop/payment.proto", package="shop", syntax="proto3")
    fdp.dependency.append("google/protobuf/timestamp.proto")
    # Not the file's first message: the serializer's message index says [1], and the
    # column holds the message the records name.
    refund = fdp.message_type.add(name="Refund")
    refund.field.add(name="reason", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    line = fdp.message_type.add(name="Payment")
    line.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    line.field.add(name="method", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    line.field.add(name="cents", number=3, type=F.TYPE_UINT32, label=F.LABEL_OPTIONAL)
    line.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    line.field.add(name="at", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                   type_name=".google.protobuf.Timestamp")
    Payment, p, send = proto_producer(bootstrap, registry, topic, pool, fdp, "shop.Payment")
    for i in range(n):
        m = Payment(id=i, method=["card", "cash"][i % 2], cents=100 * i, tags=["t"] * (i % 3))
        m.at.seconds = 1_796_623_200 + i
        send(m)
    assert p.flush(30) == 0
    print(json.dumps({"produced": n}))


def proto_producer(bootstrap, registry, topic, pool, fdp, name):
    """Message class `name` of descriptor `fdp` (added to `pool`), a producer, and a
    function that produces a message to `topic` with confluent-kafka's ProtobufSerializer."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import message_factory

    pool.Add(fdp)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = ProtobufSerializer(cls, SchemaRegistryClient({"url": registry}),
                                   {"use.deprecated.format": False})
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def send(m):
        value = serialize(m, ctx)
        p.produce(topic, value=value)
        return value

    return cls, p, send


def produce_shipments(bootstrap, registry, topic, n, version, base):
    from google.protobuf import descriptor_pb2, descriptor_pool

    F = descriptor_pb2.FieldDescriptorProto
    # Version 2 renames fields 2, 3 and 3.1 and adds `cents` (4); version 3 removes it.
    names = {1: ("cents", "parcel", "sku"), 2: ("amount_cents", "box", "code"),
             3: ("amount_cents", "box", "code")}[version]
    fdp = descriptor_pb2.FileDescriptorProto(name="shop/shipment.proto", package="shop", syntax="proto3")
    msg = fdp.message_type.add(name="Shipment")
    inner = msg.nested_type.add(name="Parcel")
    inner.field.add(name=names[2], number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    msg.field.add(name=names[0], number=2, type=F.TYPE_UINT32, label=F.LABEL_OPTIONAL)
    msg.field.add(name=names[1], number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".shop.Shipment.Parcel")
    if version == 2:
        msg.field.add(name="cents", number=4, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    Shipment, p, send = proto_producer(bootstrap, registry, topic,
                                       descriptor_pool.DescriptorPool(), fdp, "shop.Shipment")
    values = []
    for i in range(base, base + n):
        m = Shipment(id=i)
        setattr(m, names[0], i)
        setattr(getattr(m, names[1]), names[2], f"sku-{i}")
        if version == 2:
            m.cents = f"{i} cents"
        values.append(base64.b64encode(send(m)).decode())
    assert p.flush(30) == 0
    print(json.dumps({"produced": n, "values": values}))


def read_renamed(http, topic):
    from pyiceberg.catalog.rest import RestCatalog

    table = RestCatalog("floe", uri=http).load_table(f"kafka.{topic}")
    data = table.scan().to_arrow()
    typed = [t for t in data.column("value_typed").to_pylist() if t is not None]
    ids = set()
    for s in table.schemas().values():
        for name in ("cents", "amount_cents"):
            try:
                f = s.find_field(f"value_typed.{name}")
            except ValueError:
                continue
            if str(f.field_type) != "string":
                ids.add(f.field_id)
    print(json.dumps({
        "rows": len(typed),
        "fields": [f.name for f in table.schema().find_field("value_typed").field_type.fields],
        "amount_cents_sum": sum(t["amount_cents"] for t in typed),
        "codes": sum(1 for t in typed if t["box"] and t["box"]["code"]),
        "amount_cents_ids": sorted(ids),
    }))


def duckdb_sql(http, sql):
    import glob
    import importlib
    import os

    import duckdb

    con = duckdb.connect()
    # The extensions come from PyPI (duckdb-extension-*), pinned to DuckDB's version:
    # DuckDB's own INSTALL downloads from extensions.duckdb.org, which the test machines
    # cannot reach.
    for name in ("avro", "httpfs", "iceberg"):
        package = importlib.import_module(f"duckdb_extension_{name}")
        root = os.path.dirname(package.__file__)
        (path,) = glob.glob(f"{root}/extensions/*/{name}.duckdb_extension")
        con.execute(f"LOAD '{path}'")
    con.execute(f"ATTACH '' AS floe (TYPE iceberg, ENDPOINT '{http}', AUTHORIZATION_TYPE 'none')")
    rows = con.execute(sql).fetchall()
    print(json.dumps({"rows": [list(r) for r in rows]}, default=str))


def read(http, topic):
    from pyiceberg.catalog.rest import RestCatalog

    table = RestCatalog("floe", uri=http).load_table(f"kafka.{topic}")
    data = table.scan().to_arrow()
    typed = data.column("value_typed").to_pylist()
    errors = [e for e in data.column("typed_error").to_pylist() if e]
    decoded = [t for t in typed if t is not None]
    print(json.dumps({
        "rows": data.num_rows,
        "decoded": len(decoded),
        "amount_sum": sum(t["amount"] for t in decoded),
        "notes": sum(1 for t in decoded if t.get("note")),
        "errors": errors,
        "fields": [f.name for f in table.schema().find_field("value_typed").field_type.fields],
    }))


def read_widened(http, topic):
    from pyiceberg.catalog.rest import RestCatalog

    table = RestCatalog("floe", uri=http).load_table(f"kafka.{topic}")
    data = table.scan().to_arrow()
    typed = [t for t in data.column("value_typed").to_pylist() if t is not None]
    schema = table.schema()
    ids = {}
    for s in table.schemas().values():
        for name in ("qty", "amount"):
            try:
                ids.setdefault(name, set()).add(s.find_field(f"value_typed.{name}").field_id)
            except ValueError:
                pass  # a schema from before the typed column was added
    print(json.dumps({
        "rows": len(typed),
        "qty_sum": sum(t["qty"] for t in typed),
        "amount_sum": sum(t["amount"] for t in typed),
        "types": {n: str(schema.find_field(f"value_typed.{n}").field_type) for n in ("qty", "amount")},
        "arrow": {n: str(data.schema.field("value_typed").type.field(n).type) for n in ("qty", "amount")},
        "schemas": len(table.schemas()),
        "ids": {n: sorted(v) for n, v in ids.items()},
    }))


if __name__ == "__main__":
    if sys.argv[1] == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "produce-proto":
        produce_proto(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "produce-json":
        produce_json(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "produce-shipments":
        produce_shipments(*sys.argv[2:5], *map(int, sys.argv[5:8]))
    elif sys.argv[1] == "duckdb":
        duckdb_sql(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "read-renamed":
        read_renamed(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "read-widened":
        read_widened(sys.argv[2], sys.argv[3])
    else:
        read(sys.argv[2], sys.argv[3])
