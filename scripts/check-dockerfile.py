#!/usr/bin/env python3
"""Static checks of the Dockerfile, for environments without a Docker daemon.

Parses Dockerfile with `dockerfile-parse` and checks what can be checked
without building: multi-stage layout with a dependency-only layer, the binary
the build stage produces is the one the runtime stage copies and runs, a
non-root user, EXPOSE, HEALTHCHECK, the entrypoint, and a .dockerignore that
keeps the build context small but complete. Prints a JSON summary (the
entrypoint + command and the health-check command) for the Rust test, and
exits 1 listing every problem found.
"""
import fnmatch
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

from dockerfile_parse import DockerfileParser

root = Path(__file__).resolve().parent.parent
problems = []
df = DockerfileParser(path=str(root / "Dockerfile"))
instructions = [i for i in df.structure if i["instruction"] != "COMMENT"]

# Stages: split on FROM.
stages = []
for ins in instructions:
    if ins["instruction"] == "FROM":
        parts = ins["value"].split()
        name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
        stages.append({"image": parts[0], "name": name, "ins": []})
    elif stages:
        stages[-1]["ins"].append(ins)
if len(stages) < 2:
    problems.append("not multi-stage: need a build stage and a runtime stage")
    stages = stages + [{"image": "", "name": None, "ins": []}] * (2 - len(stages))
build, runtime = stages[0], stages[-1]

# The runtime base is small.
if not re.search(r"(slim|distroless|alpine|scratch)", runtime["image"]):
    problems.append(f"runtime image {runtime['image']} is not a small base")

# Rust toolchain new enough for the crate's edition.
manifest = tomllib.loads((root / "Cargo.toml").read_text())
args = {i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1]
        for i in instructions if i["instruction"] == "ARG" and "=" in i["value"]}
rust_version = args.get("RUST_VERSION", "")
if manifest["package"].get("edition") == "2024":
    m = re.match(r"(\d+)\.(\d+)", rust_version)
    if not m or (int(m.group(1)), int(m.group(2))) < (1, 85):
        problems.append(f"RUST_VERSION {rust_version!r} cannot build edition 2024 (needs >= 1.85)")

# Dependency caching: manifest-only COPY, then a cargo build, then the sources.
kinds = [(i["instruction"], i["value"]) for i in build["ins"]]
def index(pred):
    return next((n for n, k in enumerate(kinds) if pred(k)), None)
manifest_copy = index(lambda k: k[0] == "COPY" and "Cargo.toml" in k[1] and "Cargo.lock" in k[1] and " . " not in f" {k[1]} ")
source_copy = index(lambda k: k[0] == "COPY" and (k[1].startswith(". ") or k[1].startswith("src")))
dep_build = index(lambda k: k[0] == "RUN" and "cargo build" in k[1])
if None in (manifest_copy, source_copy, dep_build) or not (manifest_copy < dep_build < source_copy):
    problems.append("build stage must COPY Cargo.toml Cargo.lock, cargo build, then COPY the sources")
else:
    stub = kinds[dep_build][1]
    # Every target the manifest declares must exist for the stub build
    # (cargo refuses a manifest whose declared target file is missing).
    default_dir = {"bin": "src/bin", "test": "tests", "bench": "benches", "example": "examples"}
    for table in ("bin", "test", "bench", "example"):
        for target in manifest.get(table, []):
            path = target.get("path") or f"{default_dir[table]}/{target['name']}.rs"
            if path not in stub:
                problems.append(f"stub build does not create {path} ([[{table}]] in Cargo.toml)")
    # Cargo loads every workspace member's manifest, so the dependency
    # layer must copy them in before building.
    early_copies = " ".join(v for k, v in kinds[:dep_build] if k == "COPY")
    for member in manifest.get("workspace", {}).get("members", []):
        if member.rstrip("/") == ".":
            continue
        parents = [member] + [member.rsplit("/", n)[0] for n in range(1, member.count("/") + 1)]
        if not any(p.rstrip("/") + "/" in early_copies.split() or p in early_copies.split()
                   for p in parents):
            problems.append(f"workspace member {member} is not copied before the dependency build")

# The binary built is the one copied and run.
package = manifest["package"]["name"]
bins = [b["name"] for b in manifest.get("bin", [])] or [package]
if "lambdagate" not in bins:
    problems.append(f"Cargo.toml builds no `lambdagate` binary (bins: {bins})")
final_build = [v for k, v in kinds if k == "RUN" and "cargo build" in v]
built_path = None
if final_build:
    cmd = final_build[-1]
    if "--release" not in cmd or "--bin lambdagate" not in cmd:
        problems.append("the final cargo build must be `--release --bin lambdagate`")
    m = re.search(r"cp\s+target/release/lambdagate\s+(\S+)", cmd)
    built_path = m.group(1) if m else None
if not built_path:
    problems.append("the build stage does not copy target/release/lambdagate out")
copies = [i["value"] for i in runtime["ins"] if i["instruction"] == "COPY"]
binary_copy = [c for c in copies if built_path and f"--from={build['name']}" in c and built_path in c.split()]
if not binary_copy:
    problems.append(f"runtime stage does not COPY --from={build['name']} {built_path}")
else:
    dest = binary_copy[0].split()[-1]
    if dest != "/usr/local/bin/lambdagate":
        problems.append(f"binary copied to {dest}, not /usr/local/bin/lambdagate (on PATH)")

# Non-root user, exposed port, health check, entrypoint.
users = [i["value"].strip() for i in runtime["ins"] if i["instruction"] == "USER"]
if not users or users[-1].split(":")[0] in ("root", "0"):
    problems.append("runtime stage must switch to a non-root USER")
exposed = " ".join(i["value"] for i in runtime["ins"] if i["instruction"] == "EXPOSE").split()
if "8080" not in exposed:
    problems.append("EXPOSE 8080 (the API) missing")

def exec_form(value):
    value = value.strip()
    if value.startswith("["):
        return json.loads(value)
    return shlex.split(value)

health = [i["value"] for i in runtime["ins"] if i["instruction"] == "HEALTHCHECK"]
health_cmd = None
if not health:
    problems.append("HEALTHCHECK missing")
else:
    m = re.search(r"\bCMD\s+(.*)$", health[-1], re.S)
    health_cmd = exec_form(m.group(1)) if m else None
    if not health_cmd or health_cmd[0] != "lambdagate":
        problems.append(f"HEALTHCHECK does not run lambdagate: {health[-1]}")
entry = [exec_form(i["value"]) for i in runtime["ins"] if i["instruction"] == "ENTRYPOINT"]
cmd = [exec_form(i["value"]) for i in runtime["ins"] if i["instruction"] == "CMD"]
argv = (entry[-1] if entry else []) + (cmd[-1] if cmd else [])
if argv[:2] != ["lambdagate", "serve"]:
    problems.append(f"the container does not run `lambdagate serve`: {argv}")
# Every listener the command opens is EXPOSEd, and nothing else is.
listen_ports = [a.rsplit(":", 1)[1] for flag, a in zip(argv, argv[1:])
                if flag in ("--listen", "--admin-listen", "--invoke-listen")]
for port in listen_ports:
    if port not in exposed:
        problems.append(f"the command listens on port {port}, which is not EXPOSEd")
for port in exposed:
    if port.split("/")[0] not in listen_ports:
        problems.append(f"EXPOSE {port}, but the command opens no listener there")

# .dockerignore keeps target/ and .git out but the sources in.
ignore_file = root / ".dockerignore"
ignored = []
if ignore_file.exists():
    ignored = [l.strip().rstrip("/") for l in ignore_file.read_text().splitlines()
               if l.strip() and not l.startswith("#")]
else:
    problems.append(".dockerignore missing")
for must in ("target", ".git"):
    if must not in ignored:
        problems.append(f".dockerignore does not exclude {must}/")
def excluded(path):
    return any(fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") for pat in ignored)
for need in ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"] + [
        str(p.relative_to(root)) for p in (root / "src").rglob("*.rs")]:
    if excluded(need):
        problems.append(f".dockerignore excludes {need}, which the build needs")

print(json.dumps({"argv": argv, "healthcheck": health_cmd, "exposed": exposed, "stages": [s["name"] for s in stages],
                  "problems": problems}))
sys.exit(1 if problems else 0)
