#!/usr/bin/env python3
"""Checks the crate boundaries of ARCHITECTURE §3 / STYLE.md over `cargo metadata`:
lower crates must not depend on what they must not know about. Then checks that the
modules of floe-server do not import each other in a loop (a `crate::module` path in
code, not in comments, is an import; `handlers/*` count as one module)."""
import json, pathlib, re, subprocess, sys

FORBIDDEN = {
    "floe-common": ["floe-", "tokio", "sqlx", "kafka-protocol"],
    "floe-runtime": ["floe-", "sqlx", "kafka-protocol", "iceberg", "parquet", "datafusion"],
    "floe-kafka": ["floe-log", "floe-meta", "floe-lake", "floe-server", "sqlx", "iceberg", "parquet", "datafusion"],
    "floe-log": ["floe-kafka", "floe-meta", "floe-server", "kafka-protocol", "iceberg", "parquet", "datafusion", "sqlx", "tokio"],
    "floe-meta": ["floe-kafka", "floe-log", "floe-server", "kafka-protocol", "iceberg", "parquet", "datafusion"],
    "floe-lake": ["datafusion", "floe-server", "floe-query"],
    "floe-query": ["floe-kafka", "floe-log", "floe-meta", "floe-server"],
    # Below floe-lake: typed landing will read schemas through it, never the reverse.
    "floe-registry": ["floe-kafka", "floe-log", "floe-lake", "floe-query", "floe-server", "kafka-protocol", "iceberg", "parquet", "datafusion"],
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

def server_modules():
    src = pathlib.Path(__file__).resolve().parent.parent / "crates/floe-server/src"
    deps = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        module = rel.parts[0].removesuffix(".rs")
        code = "\n".join(l.split("//")[0] for l in f.read_text().splitlines())
        # A module's own tests may reach anywhere.
        code = code.split("#[cfg(test)]")[0]
        used = set(re.findall(r"crate::([a-z_]+)", code)) - {module}
        deps.setdefault(module, set()).update(used)
    return deps

def cycles(deps):
    found, state = [], {}
    def visit(m, path):
        state[m] = "open"
        for d in sorted(deps.get(m, ())):
            if state.get(d) == "open":
                found.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"
    for m in sorted(deps):
        if m not in state:
            visit(m, [m])
    return found

for loop in cycles(server_modules()):
    bad.append(f"floe-server modules import each other in a loop: {loop}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("crate boundaries ok; floe-server modules form no import loop")
