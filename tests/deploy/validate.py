#!/usr/bin/env python3
"""Checks the container image definition and the Kubernetes manifests without a Docker engine
or a cluster.

- Dockerfile: hadolint, then its structure (dockerfile-parse): stages, the binary's path from
  `cargo build` to ENTRYPOINT, non-root numeric USER, HEALTHCHECK, STOPSIGNAL, ports, labels,
  and that every COPY source is tracked in git and not excluded by .dockerignore. The image's
  /app is rebuilt in a temporary folder from its COPY and sed steps, and the real server runs
  on the resulting config.
- deploy/: rendered by `kubectl kustomize`, every object validated against the Kubernetes
  JSON schemas (strict: unknown fields fail), then the cross-references between objects, the
  sizing and shutdown timing, and the ConfigMap's origin.toml run by the real server (the
  bucket replaced by fixtures/, which stands in for it: no bucket or credentials here).

Exits non-zero when any check fails. Usage: validate.py JIT_ORIGIN_BINARY
"""

import copy
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

import kubernetes_validate
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# README (Memory budget): memory ≈ 2 × index_mib + manifest_mib + segment_mib + ~60 MiB
# (segment builds take their memory from segment_mib) + ~50 KiB per open connection.
RUNTIME_MIB = 60
CONNECTION_KIB = 50
# Beyond that rule: segments evicted while still being sent (load benchmark: 335-341 MiB RSS
# with a 256 MiB segment_mib, 256 connections). deployment.yaml's limit leaves more than this.
LIMIT_HEADROOM_MIB = 48
STORAGE_SCHEMES = {"s3", "az", "gs", "file", "memory"}
KINDS = {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
        return ok


R = Report()


def section(title):
    print(f"\n-- {title}")


# ---- Dockerfile --------------------------------------------------------------------------------


def stages(parser):
    """The Dockerfile's stages: [{name, image, instructions}]."""
    result = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            words = ins["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append({"name": name, "image": words[0], "ins": []})
        elif ins["instruction"] != "COMMENT" and result:
            result[-1]["ins"].append(ins)
    return result


def of(stage, instruction):
    return [i["value"] for i in stage["ins"] if i["instruction"] == instruction]


def exec_form(value):
    """A JSON-array instruction argument, or None for shell form."""
    try:
        argv = json.loads(value)
    except json.JSONDecodeError:
        return None
    return argv if isinstance(argv, list) and all(isinstance(a, str) for a in argv) else None


def copy_args(value):
    """(flags, sources, destination) of a COPY/ADD instruction."""
    words = shlex.split(value)
    flags = {w.split("=", 1)[0]: w.split("=", 1)[-1] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def dockerignore_regexes():
    """Docker's rules: patterns in order, the last match wins, `!` re-includes, a pattern that
    matches a folder matches everything in it."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!").strip("/")))
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            else:
                regex += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
                i += 1
        rules.append((re.compile(regex + "(?:/.*)?"), negate))
    return rules


def ignored(path, rules):
    excluded = False
    for regex, negate in rules:
        if regex.fullmatch(path):
            excluded = not negate
    return excluded


def tracked_files(path):
    out = subprocess.run(["git", "ls-files", "--", path], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def cargo_manifest():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())


def check_dockerfile(tmp):
    """Checks the Dockerfile; returns what the manifests must agree with."""
    section("Dockerfile")
    lint = subprocess.run(["hadolint", "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    R.check("hadolint reports nothing", lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr)

    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    all_stages = stages(parser)
    cargo = cargo_manifest()
    R.check(
        "multi-stage: FROM … AS build, then the runtime stage",
        len(all_stages) >= 2 and all_stages[0]["name"] == "build",
    )
    build, final = all_stages[0], all_stages[-1]

    # Toolchain and runtime on the same Debian release (glibc), toolchain new enough.
    m = re.fullmatch(r"rust:(\d+)\.(\d+)(?:\.\d+)?-(\w+)", build["image"])
    need = tuple(int(x) for x in cargo["package"]["rust-version"].split(".")[:2])
    R.check(
        f"build image {build['image']} ≥ rust-version {cargo['package']['rust-version']}",
        bool(m) and (int(m[1]), int(m[2])) >= need,
    )
    release = m[3] if m else None
    R.check(
        f"runtime image {final['image']} is Debian {release} slim (same glibc as the build)",
        final["image"] == f"debian:{release}-slim",
    )

    # The binary: from `cargo build --release --locked --bin NAME` to ENTRYPOINT.
    builds = [shlex.split(v) for v in of(build, "RUN") if "cargo build" in v]
    R.check("build stage runs cargo build", bool(builds))
    for words in builds:
        R.check("cargo build uses --release --locked", "--release" in words and "--locked" in words, " ".join(words))
    bin_name = builds[-1][builds[-1].index("--bin") + 1] if builds and "--bin" in builds[-1] else None
    R.check(f"--bin {bin_name} is a [[bin]] of Cargo.toml", bin_name in {b["name"] for b in cargo.get("bin", [])})
    workdir = of(build, "WORKDIR")[-1] if of(build, "WORKDIR") else "/"
    target_dir = next((v.split("=", 1)[1] for v in of(build, "ENV") if v.startswith("CARGO_TARGET_DIR=")), "target")
    built = str(PurePosixPath(workdir) / target_dir / "release" / str(bin_name))
    installed = [
        copy_args(v)[2]
        for v in of(final, "COPY")
        if copy_args(v)[0].get("--from") == "build" and copy_args(v)[1] == [built]
    ]
    R.check(f"COPY --from=build {built} into the runtime stage", len(installed) == 1)
    entrypoint = exec_form(of(final, "ENTRYPOINT")[-1]) if of(final, "ENTRYPOINT") else None
    R.check(
        "ENTRYPOINT (exec form) runs the copied binary",
        bool(entrypoint and installed) and entrypoint[0] == installed[0],
        str(entrypoint),
    )
    R.check(
        "no ADD (COPY only, no downloads)", not any(i["instruction"] == "ADD" for s in all_stages for i in s["ins"])
    )

    # Non-root, numeric (Kubernetes' runAsNonRoot cannot resolve names).
    users = of(final, "USER")
    uid = users[-1].split(":")[0] if users else ""
    R.check(f"USER {users[-1] if users else None} is numeric and not root", uid.isdigit() and int(uid) != 0)

    # Health check, signal, ports.
    installs = " ".join(v for v in of(final, "RUN") if "apt-get install" in v)
    R.check("runtime installs ca-certificates (HTTPS to S3, Azure, GCS)", "ca-certificates" in installs)
    health = of(final, "HEALTHCHECK")
    probe = exec_form(health[-1].split(" CMD ", 1)[-1].strip()) if health else None
    R.check("HEALTHCHECK (exec form) present", bool(probe), str(health))
    probe_url = next((a for a in probe or [] if a.startswith("http")), "")
    pm = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/healthz", probe_url)
    R.check(f"HEALTHCHECK probes /healthz on loopback ({probe_url})", bool(pm))
    R.check(
        f"the probe command {probe[0] if probe else None} is installed in the runtime stage",
        bool(probe) and re.search(rf"\b{re.escape(probe[0])}\b", installs) is not None,
    )
    R.check("STOPSIGNAL SIGTERM", of(final, "STOPSIGNAL") == ["SIGTERM"])
    main_rs = (ROOT / "src/main.rs").read_text()
    R.check("the server stops on SIGTERM (src/main.rs)", "SignalKind::terminate()" in main_rs)
    exposed = {p.split("/")[0] for v in of(final, "EXPOSE") for p in v.split()}
    R.check("EXPOSE 8080 (HTTP) and 8443 (HTTPS)", {"8080", "8443"} <= exposed, str(exposed))

    labels = parser.labels
    for key in ("title", "description", "version", "revision", "licenses"):
        R.check(f"label org.opencontainers.image.{key}", bool(labels.get(f"org.opencontainers.image.{key}")))
    R.check(
        "image version label = Cargo.toml version",
        labels.get("org.opencontainers.image.version") == cargo["package"]["version"],
    )
    R.check(
        "image licenses label = Cargo.toml license",
        labels.get("org.opencontainers.image.licenses") == cargo["package"]["license"],
    )

    # Build context: every COPY source tracked and not excluded; the usual clutter excluded.
    rules = dockerignore_regexes()
    for stage in all_stages:
        for value in of(stage, "COPY"):
            flags, sources, _ = copy_args(value)
            if "--from" in flags:
                continue
            for src in sources:
                files = tracked_files(src)
                R.check(f"COPY {src}: tracked in git", bool(files))
                left_out = [f for f in files if ignored(f, rules)]
                R.check(f"COPY {src}: not excluded by .dockerignore", not left_out, ", ".join(left_out[:5]))
    for clutter in ("target/release/jit-origin", ".git/HEAD", "tests/run.sh", "tests/e2e/node_modules/x/index.js"):
        R.check(f".dockerignore excludes {clutter}", ignored(clutter, rules))

    # The image's /app, rebuilt here: its COPYs of the context, then its sed edits.
    image_root = tmp / "image"
    workdir = "/"
    for ins in final["ins"]:
        if ins["instruction"] == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / ins["value"])
        elif ins["instruction"] == "COPY" and "--from" not in copy_args(ins["value"])[0]:
            _, sources, dest = copy_args(ins["value"])
            dest_path = image_root / str(PurePosixPath(workdir) / dest).lstrip("/")
            for src in sources:
                for f in tracked_files(src):
                    if ignored(f, rules):
                        continue
                    if f != src:  # a folder's contents
                        target = dest_path / str(PurePosixPath(f).relative_to(src))
                    else:  # a file, to a file or into a folder
                        target = dest_path / PurePosixPath(f).name if dest.endswith("/") else dest_path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / f, target)
        elif ins["instruction"] == "RUN" and ins["value"].startswith("sed "):
            # Absolute paths into the rebuilt image (the sed script itself is not one).
            argv = [str(image_root / a.lstrip("/")) if a.startswith("/") else a for a in shlex.split(ins["value"])]
            subprocess.run(argv, check=True)
    cmd = exec_form(of(final, "CMD")[-1]) if of(final, "CMD") else []
    config_arg = cmd[cmd.index("--config") + 1] if "--config" in cmd else None
    image_config = image_root / str(config_arg).lstrip("/")
    R.check(f"CMD's --config {config_arg} is in the image", config_arg is not None and image_config.is_file())
    if image_config.is_file():
        listen = tomllib.loads(image_config.read_text()).get("listen", "")
        port = listen.rsplit(":", 1)[-1]
        R.check(f"image config listens on all interfaces ({listen})", listen.startswith("0.0.0.0:"))
        R.check("image config port = HEALTHCHECK port, and exposed", bool(pm) and port == pm[1] and port in exposed)
        serve_check("image config (/app as the Dockerfile builds it)", image_config, {})

    return {"uid": int(uid) if uid.isdigit() else None, "base": final["image"], "version": cargo["package"]["version"]}


# ---- the real server ---------------------------------------------------------------------------


def http_get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_server(config):
    """Starts `jit-origin serve --config CONFIG --log-format json`; returns (process, addresses
    ({"addr": plain listener, "health": health listener}, empty when it did not start), printed
    lines, log lines, reader thread). Printed lines include the error of a refused config."""
    # One pipe for both streams keeps their order. The server logs "serving HTTP" as soon as it
    # listens; the URLs are printed afterwards, as each locator's folder has been listed.
    proc = subprocess.Popen(
        [BINARY, "serve", "--config", str(config), "--log-format", "json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed, logged, addr = [], [], {}
    serving = threading.Event()

    def read():
        for line in proc.stdout:
            try:
                fields = json.loads(line).get("fields", {})
            except json.JSONDecodeError:
                printed.append(line.rstrip())
                continue
            logged.append(line.rstrip())
            if fields.get("message") == "serving /healthz, /readyz and /metrics":
                addr["health"] = fields.get("addr")
            if fields.get("message") == "serving HTTP":
                addr["addr"] = fields.get("addr")
                serving.set()
        serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    serving.wait(timeout=30)
    return proc, addr, printed, logged, reader


def serve_check(label, config, replace):
    """Runs the server on CONFIG with listen (and health_listen) on ephemeral loopback ports and
    `replace`d storage URLs; every URL it prints must serve, health and metrics answer (on the
    health listener when there is one), then SIGTERM must stop it cleanly."""
    text, n = re.subn(r'(?m)^listen = ".*"$', 'listen = "127.0.0.1:0"', config.read_text())
    if not R.check(f"{label}: one top-level listen line to move to a loopback port", n == 1):
        return
    text, has_health = re.subn(r'(?m)^health_listen = ".*"$', 'health_listen = "127.0.0.1:0"', text)
    for old, new in replace.items():
        text = text.replace(f'url = "{old}"', f'url = "{new}"')
    run_config = config.with_name("run-" + config.name)
    run_config.write_text(text)
    proc, addrs, out, err, reader = start_server(run_config)
    addr = addrs.get("addr")
    try:
        if not R.check(f"{label}: the server starts", addr is not None, "\n".join((out + err)[-5:])):
            return
        wanted = {l["id"] for l in tomllib.loads(text).get("locator", [])}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("not loadable" in e for e in err):
            if {line.split(": ", 1)[1].split("/")[3] for line in out if ": http://" in line} >= wanted:
                break
            time.sleep(0.05)
        unloadable = [e for e in err if "not loadable" in e]
        R.check(f"{label}: every locator's asset loads", not unloadable, "\n".join(unloadable))
        locators = tomllib.loads(text).get("locator", [])
        urls = [line.split(": ", 1)[1] for line in out if ": http://" in line]
        R.check(
            f"{label}: URLs printed for all {len(locators)} locators",
            {u.split("/")[3] for u in urls} == {l["id"] for l in locators},
        )
        bad = [f"{s} {u}" for u in urls for s, _ in [http_get(u)] if s != 200]
        R.check(f"{label}: {len(urls)} manifest URLs answer 200", not bad, "; ".join(bad))
        # Logged right after "serving HTTP"; the URLs waited for above come later.
        health = addrs.get("health", addr) if has_health else addr
        if has_health:
            R.check(f"{label}: the health listener is up", "health" in addrs)
            media = urls[0].replace(f"http://{addr}/", f"http://{health}/", 1) if urls else None
            R.check(f"{label}: the health listener serves no media (404)", media and http_get(media)[0] == 404)
        for path in ("/healthz", "/readyz"):
            R.check(f"{label}: GET {path} → 200 on {health}", http_get(f"http://{health}{path}")[0] == 200)
        status, body = http_get(f"http://{health}/metrics")
        R.check(f"{label}: GET /metrics → Prometheus text", status == 200 and b"jit_http_requests_total" in body)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        reader.join(timeout=5)
    R.check(f"{label}: SIGTERM stops the server with exit 0", code == 0, f"exit {code}")


def refuses_unknown_key(label, config):
    """The server must refuse CONFIG with an unknown key appended (to its last table), naming it:
    the loader's check that the serve check relies on."""
    bad = config.with_name("bad-" + config.name)
    bad.write_text(config.read_text() + "\ncolour = 1\n")
    r = subprocess.run(
        [BINARY, "serve", "--config", str(bad)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    R.check(f"{label}: refused with an unknown key added", r.returncode != 0 and "colour" in r.stderr, r.stderr.strip())


# ---- Kubernetes --------------------------------------------------------------------------------


def mib(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", str(quantity))
    return float(m[1]) * units.get(m[2], 1 / 2**20) if m else None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def drain_deadline_secs(conf):
    """The server's drain deadline: [lifecycle] drain_secs of CONF, else the default in
    src/config.rs (LifecycleConfig { drain_secs: N })."""
    configured = conf.get("lifecycle", {}).get("drain_secs")
    if configured is not None:
        return int(configured)
    config_rs = (ROOT / "src/config.rs").read_text()
    m = re.search(r"LifecycleConfig \{ drain_secs: (\d+) \}", config_rs)
    R.check("default drain deadline found in src/config.rs (LifecycleConfig { drain_secs: N })", bool(m))
    return int(m[1]) if m else None


def schema_error(doc, version):
    """Why DOC is not a valid object for Kubernetes VERSION (unknown fields refused), or ""."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return ""
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(map(str, e.path))}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return f"no schema for {e.kind} {e.api_version}"


def check_kubernetes(tmp, image):
    section("Kubernetes manifests (deploy/)")
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", [])) | {
        f for g in kustomization.get("configMapGenerator", []) for f in g.get("files", [])
    }
    on_disk = {p.name for p in DEPLOY.iterdir() if p.name != "kustomization.yaml"}
    R.check(
        "every file in deploy/ is used by kustomization.yaml, and every one it names exists",
        listed == on_disk,
        f"{sorted(listed)} vs {sorted(on_disk)}",
    )
    rendered = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True)
    if not R.check("kubectl kustomize deploy/ renders", rendered.returncode == 0, rendered.stderr):
        return
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = {d["kind"]: d for d in docs}
    if not R.check(f"objects: {', '.join(sorted(KINDS))}", set(kinds) == KINDS, str(sorted(kinds))):
        return

    # Every version whose schemas kubernetes-validate ships (1.25 to 1.37 with the pinned one).
    versions = sorted(
        {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()},
        key=lambda v: tuple(map(int, v.split("."))),
    )
    for doc in docs:
        errors = {}
        for v in versions:
            if error := schema_error(doc, v):
                errors.setdefault(error, []).append(v)
        R.check(
            f"{doc['kind']}/{doc['metadata']['name']} valid (strict) for Kubernetes {versions[0]} to {versions[-1]}",
            not errors,
            "; ".join(f"{e} (Kubernetes {', '.join(vs)})" for e, vs in errors.items()),
        )
    # The schema check can fail: an unknown field in the Deployment is refused.
    typo = copy.deepcopy(kinds["Deployment"])
    typo["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    R.check(
        "strict validation refuses an unknown field (readinessProbe.httpGett)", bool(schema_error(typo, versions[-1]))
    )

    dep, svc, cm = kinds["Deployment"], kinds["Service"], kinds["ConfigMap"]
    hpa, pdb = kinds["HorizontalPodAutoscaler"], kinds["PodDisruptionBudget"]
    pod = dep["spec"]["template"]
    pod_labels, spec = pod["metadata"].get("labels", {}), pod["spec"]
    containers = spec["containers"]
    R.check("one container", len(containers) == 1)
    c = containers[0]

    # Selectors.
    R.check("Deployment selector matches its pod labels", matches(dep["spec"]["selector"]["matchLabels"], pod_labels))
    R.check("Service selector matches the pod labels", matches(svc["spec"].get("selector"), pod_labels))
    R.check(
        "PodDisruptionBudget selector matches the pod labels",
        matches(pdb["spec"]["selector"].get("matchLabels"), pod_labels),
    )
    spread = [t["labelSelector"]["matchLabels"] for t in spec.get("topologySpreadConstraints", [])]
    anti = spec.get("affinity", {}).get("podAntiAffinity")
    R.check(
        "replicas spread (topologySpreadConstraints or pod anti-affinity)",
        (spread and all(matches(s, pod_labels) for s in spread)) or bool(anti),
    )
    R.check(f"replicas ≥ 2 ({dep['spec'].get('replicas')})", dep["spec"].get("replicas", 1) >= 2)
    ref = hpa["spec"]["scaleTargetRef"]
    R.check(
        "HPA targets the Deployment",
        (ref["apiVersion"], ref["kind"], ref["name"]) == ("apps/v1", "Deployment", dep["metadata"]["name"]),
    )
    cpu = [m for m in hpa["spec"].get("metrics", []) if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    R.check("HPA scales on CPU utilisation", bool(cpu) and cpu[0]["resource"]["target"]["type"] == "Utilization")
    R.check(
        f"HPA replicas {hpa['spec'].get('minReplicas')}–{hpa['spec']['maxReplicas']}: at least 2, room to grow",
        hpa["spec"].get("minReplicas", 1) >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"],
    )
    R.check(
        "PodDisruptionBudget leaves a replica up",
        pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) >= 1,
    )

    # Ports and probes.
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    declared = set(ports) | set(ports.values())
    R.check(
        "container declares http 8080 and https 8443",
        ports.get("http") == 8080 and ports.get("https") == 8443,
        str(ports),
    )
    for p in svc["spec"]["ports"]:
        R.check(
            f"Service port {p['name']} → targetPort {p['targetPort']} declared by the container",
            p["targetPort"] in declared,
        )
    http_port = ports.get("http")

    # Security.
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    R.check("runAsNonRoot", psc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True)
    R.check(f"runAsUser = the image's USER ({image['uid']})", sc.get("runAsUser", psc.get("runAsUser")) == image["uid"])
    R.check("allowPrivilegeEscalation: false", sc.get("allowPrivilegeEscalation") is False)
    R.check("readOnlyRootFilesystem: true", sc.get("readOnlyRootFilesystem") is True)
    R.check("capabilities drop ALL", sc.get("capabilities", {}).get("drop") == ["ALL"])
    R.check("not privileged", not sc.get("privileged"))
    R.check(f"image tag = Cargo.toml version ({c['image']})", c["image"].rsplit(":", 1)[-1] == image["version"])

    # Config: the ConfigMap key lands where --config points.
    args = c.get("args", [])
    config_path = PurePosixPath(args[args.index("--config") + 1]) if "--config" in args else None
    mounts = [
        m for m in c.get("volumeMounts", []) if config_path and PurePosixPath(m["mountPath"]) == config_path.parent
    ]
    volume = next((v for v in spec.get("volumes", []) if mounts and v["name"] == mounts[0]["name"]), {})
    R.check(
        f"--config {config_path}: its folder is a mounted ConfigMap volume",
        # The whole map mounted (no subPath, no items), so the key is the file name.
        bool(volume.get("configMap")) and not mounts[0].get("subPath") and not volume["configMap"].get("items"),
    )
    R.check(
        "the volume names the rendered ConfigMap", volume.get("configMap", {}).get("name") == cm["metadata"]["name"]
    )
    R.check(
        f"the ConfigMap has the key {config_path.name if config_path else None}",
        config_path is not None and config_path.name in cm.get("data", {}),
    )
    toml_text = cm.get("data", {}).get(config_path.name if config_path else "", "")
    R.check("ConfigMap origin.toml = deploy/origin.toml", toml_text == (DEPLOY / "origin.toml").read_text())
    conf = tomllib.loads(toml_text) if toml_text else {}
    listen = conf.get("listen", "")
    R.check(f"listen ({listen}) is all interfaces on the http containerPort", listen == f"0.0.0.0:{http_port}")

    # Probes and the scraper on the health listener, which a connection flood on the Service's
    # port cannot starve (outside max_connections), and which the Service does not expose.
    health_port = ports.get("health")
    health_listen = conf.get("limits", {}).get("health_listen", "")
    R.check(
        f"[limits] health_listen ({health_listen}) is all interfaces on the health containerPort",
        health_listen == f"0.0.0.0:{health_port}",
    )
    R.check(
        "the Service does not expose the health port",
        all(p["targetPort"] not in ("health", health_port) for p in svc["spec"]["ports"]),
    )
    for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(kind, {}).get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        R.check(f"{kind}: GET {path} on the health port", get.get("path") == path and port == health_port, str(get))
    annotations = pod["metadata"].get("annotations", {})
    R.check(
        "Prometheus scrape annotations for /metrics on the health port",
        annotations.get("prometheus.io/scrape") == "true"
        and annotations.get("prometheus.io/path") == "/metrics"
        and annotations.get("prometheus.io/port") == str(health_port),
    )

    # Storage: cloud URLs well formed; S3 needs a region; credentials only by reference.
    urls = [s["url"] for s in conf.get("storage", [])]
    for url in urls:
        m = re.fullmatch(r"([a-z0-9]+)://([^/]*)(/.*)?", url)
        R.check(
            f"storage url {url}: scheme in {sorted(STORAGE_SCHEMES)}, bucket named",
            bool(m) and m[1] in STORAGE_SCHEMES and (m[1] in ("file", "memory") or bool(m[2])),
        )
    env = {e["name"]: e for e in c.get("env", [])}
    if any(u.startswith("s3://") for u in urls):
        R.check("S3 storage: AWS_REGION set", "AWS_REGION" in env or "AWS_DEFAULT_REGION" in env)
    refs = [e["valueFrom"]["secretKeyRef"] for e in env.values() if "secretKeyRef" in e.get("valueFrom", {})]
    R.check(
        "credentials from a Secret by reference, optional", bool(refs) and all(r.get("optional") is True for r in refs)
    )
    R.check("no Secret committed", not any(d["kind"] == "Secret" for d in docs))

    # Memory sizing from the config's caches.
    cache, limits = conf.get("cache", {}), conf.get("limits", {})
    # The defaults of src/config.rs for keys left out.
    index = cache.get("index_mib", 256)
    caps = [index, index, cache.get("manifest_mib", 64), cache.get("segment_mib", 1024)]
    build = limits.get("build_memory_mib", 16)
    # Segment builds take their memory from segment_mib (src/config.rs refuses more).
    R.check(f"build_memory_mib {build} < segment_mib {caps[3]}", build < caps[3])
    estimate = sum(caps) + RUNTIME_MIB
    connections = limits.get("max_connections", 10000)
    connections_mib = connections * CONNECTION_KIB // 1024
    res = c.get("resources", {})
    req_q, lim_q = res.get("requests", {}).get("memory"), res.get("limits", {}).get("memory")
    req, lim = mib(req_q), mib(lim_q)
    R.check(
        "cpu and memory requests and limits set",
        all(res.get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")),
    )
    rule = f"caches {' + '.join(map(str, caps))} + {RUNTIME_MIB} = {estimate} MiB"
    R.check(f"memory request {req_q} ≥ {rule}", req is not None and req >= estimate)
    R.check(
        f"memory limit {lim_q} ≥ {estimate} + {connections} connections × {CONNECTION_KIB} KiB"
        f" ({connections_mib} MiB) + {LIMIT_HEADROOM_MIB} MiB headroom",
        lim is not None and lim >= estimate + connections_mib + LIMIT_HEADROOM_MIB,
    )

    # Shutdown: preStop sleep + drain deadline < terminationGracePeriodSeconds.
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep_cmd = pre.get("exec", {}).get("command", [])
    sleep = (
        int(pre["sleep"]["seconds"]) if "sleep" in pre else (int(sleep_cmd[1]) if sleep_cmd[:1] == ["sleep"] else None)
    )
    R.check(f"preStop sleeps ({sleep} s)", bool(sleep))
    if sleep_cmd[:1] == ["sleep"]:
        R.check(f"runtime image has sleep (base {image['base']})", image["base"].startswith("debian:"))
    drain = drain_deadline_secs(conf)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    R.check(
        f"preStop {sleep} s + drain {drain} s < terminationGracePeriodSeconds {grace} s",
        bool(sleep and drain) and sleep + drain < grace,
    )

    # The ConfigMap's config on the real server, the bucket replaced by fixtures/.
    config = tmp / "configmap" / "origin.toml"
    config.parent.mkdir()
    config.write_text(toml_text)
    cloud = {u: f"file://{ROOT / 'fixtures'}" for u in urls if not u.startswith(("file://", "memory://"))}
    serve_check("ConfigMap config (cloud storage → fixtures/)", config, cloud)
    refuses_unknown_key("ConfigMap config", config)


def main():
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        tmp = Path(tmp)
        image = check_dockerfile(tmp)
        check_kubernetes(tmp, image)
    print(f"\ndeploy: {R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    BINARY = sys.argv[1]
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"{BINARY}: not an executable (cargo build --bin jit-origin)")
    sys.exit(main())
