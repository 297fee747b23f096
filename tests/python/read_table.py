"""Reads a topic's table through Floe's Iceberg REST catalog with PyIceberg, and checks
every REST response against the Iceberg REST OpenAPI spec (read from the shared specs
folder, not copied). Prints one JSON line: rows per partition and the rows themselves.

Also lists the data files the current snapshot references ("data_files"), for orphan
checks.

usage: read_table.py <http base url> <namespace> <table> [spec.yaml]
"""
import json
import sys
import urllib.request

from pyiceberg.catalog.rest import RestCatalog


def check_against_spec(base, spec_path, namespace, table):
    """Validates the JSON answers of the endpoints Floe serves against the spec schemas."""
    import yaml
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = yaml.safe_load(open(spec_path))
    registry = Registry().with_resource("spec", Resource(contents=spec, specification=DRAFT202012))

    def validate(path, schema_name):
        body = json.load(urllib.request.urlopen(base + path))
        schema = {"$ref": "spec#/components/schemas/" + schema_name}
        errors = list(Draft202012Validator(schema, registry=registry).iter_errors(body))
        if errors:
            raise SystemExit(f"{path} does not match {schema_name}: {errors[0].message}")
        return body

    validate("/v1/config", "CatalogConfig")
    validate("/v1/namespaces", "ListNamespacesResponse")
    validate(f"/v1/namespaces/{namespace}", "GetNamespaceResponse")
    validate(f"/v1/namespaces/{namespace}/tables", "ListTablesResponse")
    body = validate(f"/v1/namespaces/{namespace}/tables/{table}", "LoadTableResult")
    locations = [body["metadata-location"], body["metadata"]["location"]]
    locations += [s["manifest-list"] for s in body["metadata"].get("snapshots", [])]
    for loc in locations:
        if not (loc.startswith("file:/") or loc.startswith("s3://")):
            raise SystemExit(f"location is not an absolute URI: {loc}")
    try:
        urllib.request.urlopen(base + f"/v1/namespaces/{namespace}/tables/no_such_table")
        raise SystemExit("a missing table did not answer 404")
    except urllib.error.HTTPError as e:
        err = json.load(e)
        if e.code != 404 or err["error"]["type"] != "NoSuchTableException":
            raise SystemExit(f"unexpected error answer {e.code} {err}")


def main():
    base, namespace, table = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4:
        check_against_spec(base, sys.argv[4], namespace, table)
    catalog = RestCatalog("floe", uri=base)
    t = catalog.load_table((namespace, table))
    arrow = t.scan().to_arrow().sort_by([("partition", "ascending"), ("offset", "ascending")])
    rows = arrow.to_pylist()
    out = {
        "rows": [
            {
                "partition": r["partition"],
                "offset": r["offset"],
                "timestamp_ms": int(r["timestamp"].timestamp() * 1000),
                "key": r["key"].decode() if r["key"] is not None else None,
                "value": r["value"].decode() if r["value"] is not None else None,
                "headers": [
                    [h["key"], h["value"].decode() if h["value"] is not None else None]
                    for h in (r["headers"] or [])
                ],
            }
            for r in rows
        ],
        "data_files": [task.file.file_path for task in t.scan().plan_files()],
        "snapshot_summary": dict(t.current_snapshot().summary.additional_properties),
        "partition_spec": str(t.spec()),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
