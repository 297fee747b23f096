#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (kcat,
# PostgreSQL, the Python Kafka client, PyIceberg, DuckDB, moto's S3 server, Spark with Iceberg,
# the deploy/ checkers), starts a throwaway
# Postgres on a free port, checks formatting, lints and crate boundaries, builds the
# `floe` binary the process tests run,
# and runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. System packages.
need=()
command -v kcat >/dev/null || need+=(kcat)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v python3 >/dev/null || need+=(python3 python3-pip)
command -v fincore >/dev/null || need+=(util-linux)   # floe-log's page-cache test
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)   # Spark and deploy/ checkers
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. Python client for the cross-language test.
python3 -c "import kafka" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "kafka-python==2.2.*"
# confluent-kafka with its schema-registry serializers (Avro, Protobuf, JSON Schema): the
# registry test's client (tests/tests/schema_registry.rs).
python3 -c "import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf, confluent_kafka.schema_registry.json_schema" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check "confluent-kafka[avro,json,protobuf,schemaregistry]==2.*"
# PyIceberg reads topic tables through Floe's REST catalog; jsonschema + PyYAML check the
# REST answers against the Iceberg OpenAPI spec.
python3 -c "import pyiceberg, pyarrow, yaml, jsonschema, referencing" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check "pyiceberg[pyarrow]==0.10.*" pyyaml "jsonschema>=4.18"
# DuckDB with its iceberg extension (and the avro and httpfs ones it needs), from PyPI:
# reads typed tables through the REST catalog (tests/tests/typed_tables.rs). The
# extension packages must match DuckDB's version.
python3 -c "import duckdb, duckdb_extension_iceberg, duckdb_extension_avro, duckdb_extension_httpfs; assert duckdb.__version__ == '1.5.5'" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check "duckdb==1.5.5" \
       "duckdb-extension-iceberg==1.5.5" "duckdb-extension-avro==1.5.5" "duckdb-extension-httpfs==1.5.5"
# The ADBC Flight SQL driver: a Flight SQL client nobody here wrote, for tests/tests/sql.rs.
python3 -c "import adbc_driver_flightsql.dbapi" 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check "adbc-driver-flightsql>=1.3" "adbc-driver-manager>=1.3"
# moto's S3 server: the lake tests land topics in a real S3 API. Chosen because it is on
# PyPI (MinIO and the other S3 servers ship binaries from their own sites, which the test
# machines cannot reach); see tests/src/s3.rs.
command -v moto_server >/dev/null || python3 -m pip install -q --disable-pip-version-check "moto[server]==5.*"
# Spark 3.5 + Iceberg 1.10 (and a Java runtime) for tests/tests/spark.rs.
bash scripts/spark-setup.sh

# 3. A throwaway PostgreSQL for the metadata-store tests.
PGDIR=$(mktemp -d /tmp/floe-pg.XXXXXX)
chmod 755 "$PGDIR"
FLOE_TEST_POSTGRES_URL=$(bash scripts/postgres.sh start "$PGDIR")
export FLOE_TEST_POSTGRES_URL
trap 'bash scripts/postgres.sh stop "$PGDIR" >/dev/null 2>&1 || true; rm -rf "$PGDIR"' EXIT

# 4. Static checks.
echo "== fmt, clippy, crate boundaries"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
python3 scripts/check_boundaries.py

# 5. Tests. The process tests (SIGKILL) run the real `floe` binary.
echo "== tests"
cargo build -p floe-cli --quiet
# Packaging: every file in deploy/ checked with real tools (see deploy/check.sh).
FLOE_BIN="$CARGO_TARGET_DIR/debug/floe" bash deploy/check.sh
cargo test --workspace --no-fail-fast
