#!/usr/bin/env python3
"""Checks the crate boundaries of ARCHITECTURE §3 / STYLE.md over `cargo metadata`:
lower crates must not depend on what they must not know about."""
import json, subprocess, sys

FORBIDDEN = {
    "floe-common": ["floe-", "tokio", "sqlx", "kafka-protocol"],
    "floe-runtime": ["floe-", "sqlx", "kafka-protocol", "iceberg", "parquet", "datafusion"],
    "floe-kafka": ["floe-log", "floe-meta", "floe-lake", "floe-server", "sqlx", "iceberg", "parquet", "datafusion"],
    "floe-log": ["floe-kafka", "floe-meta", "floe-server", "kafka-protocol", "iceberg", "parquet", "datafusion", "sqlx", "tokio"],
    "floe-meta": ["floe-kafka", "floe-log", "floe-server", "kafka-protocol", "iceberg", "parquet", "datafusion"],
    "floe-lake": ["datafusion", "floe-server", "floe-query"],
    "floe-query": ["floe-kafka", "floe-log", "floe-meta", "floe-server"],
}
meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"]))
bad = []
for pkg in meta["packages"]:
    rules = FORBIDDEN.get(pkg["name"], [])
    for dep in pkg["dependencies"]:
        if dep["kind"] == "dev":
            continue
        for prefix in rules:
            if dep["name"].startswith(prefix) and dep["name"] != pkg["name"] and not (prefix == "floe-" and dep["name"] == "floe-common"):
                bad.append(f'{pkg["name"]} must not depend on {dep["name"]}')
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("crate boundaries ok")
