"""Strict JSON schemas for the KubeRay objects this project deploys (RayCluster, RayJob, RayCronJob).

They describe exactly the fields the manifests under ``k8s/`` use, with ``additionalProperties: false`` on
every object the project writes itself, so a typo (``shedule``, ``submisionMode``) or a field from another
KubeRay version fails the tests. They are narrower than the operator's CRD schema: a field that KubeRay
accepts but that is not listed here is rejected until someone adds it on purpose.
``scripts/validate_k8s_crds.py`` checks the same objects against the official CRD schema (KubeRay v1.7.0)
when it is available.

Pod templates (head, workers, submitter) are not described here: :func:`pod_templates` yields them so that the
tests validate each one strictly as a core ``v1`` ``PodTemplateSpec`` with ``kubernetes_validate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

API_VERSION = "ray.io/v1"

# KubeRay's JobSubmissionMode values (the CRD has no enum, so a typo would pass the API server).
SUBMISSION_MODES = ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN_PREFIX = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?-$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_INT32_NON_NEGATIVE = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_INT32_POSITIVE = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}

# Checked separately (strict core/v1 PodTemplateSpec); here only "an object with a spec".
POD_TEMPLATE: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
    "additionalProperties": False,
}

_RESOURCE_LIST = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}]},
}
_CONTAINER_RESOURCES = {
    "type": "object",
    "properties": {"requests": _RESOURCE_LIST, "limits": _RESOURCE_LIST},
    "additionalProperties": False,
}

METADATA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": _DNS_LABEL, "maxLength": 63},
        "generateName": {"type": "string", "pattern": _DNS_SUBDOMAIN_PREFIX, "maxLength": 58},
        "namespace": {"type": "string", "pattern": _DNS_LABEL},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "oneOf": [{"required": ["name"]}, {"required": ["generateName"]}],
    "additionalProperties": False,
}

HEAD_GROUP_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["rayStartParams", "template"],
    "properties": {
        "rayStartParams": _STRING_MAP,
        "template": POD_TEMPLATE,
    },
    "additionalProperties": False,
}

WORKER_GROUP_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template"],
    "properties": {
        "groupName": {"type": "string", "pattern": _DNS_LABEL},
        "replicas": _INT32_NON_NEGATIVE,
        "minReplicas": _INT32_NON_NEGATIVE,
        "maxReplicas": _INT32_NON_NEGATIVE,
        "rayStartParams": _STRING_MAP,
        "template": POD_TEMPLATE,
    },
    "additionalProperties": False,
}

AUTOSCALER_OPTIONS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
        "idleTimeoutSeconds": _INT32_NON_NEGATIVE,
        "resources": _CONTAINER_RESOURCES,
        "securityContext": {"type": "object"},
    },
    "additionalProperties": False,
}

RAY_CLUSTER_SPEC: dict[str, Any] = {
    "type": "object",
    "required": ["rayVersion", "headGroupSpec", "workerGroupSpecs"],
    "properties": {
        "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "authOptions": {
            "type": "object",
            "properties": {"mode": {"enum": ["disabled", "token"]}},
            "additionalProperties": False,
        },
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": AUTOSCALER_OPTIONS,
        "headGroupSpec": HEAD_GROUP_SPEC,
        "workerGroupSpecs": {"type": "array", "minItems": 1, "items": WORKER_GROUP_SPEC},
    },
    "additionalProperties": False,
}

RAY_JOB_SPEC: dict[str, Any] = {
    "type": "object",
    "required": [
        "entrypoint",
        "submissionMode",
        "shutdownAfterJobFinishes",
        "ttlSecondsAfterFinished",
        "activeDeadlineSeconds",
        "backoffLimit",
        "submitterConfig",
        "submitterPodTemplate",
        "rayClusterSpec",
    ],
    "properties": {
        "suspend": {"type": "boolean"},
        "entrypoint": {"type": "string", "minLength": 1},
        "submissionMode": {"enum": SUBMISSION_MODES},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": _INT32_NON_NEGATIVE,
        "activeDeadlineSeconds": _INT32_POSITIVE,
        "backoffLimit": _INT32_NON_NEGATIVE,
        "submitterConfig": {
            "type": "object",
            "properties": {"backoffLimit": _INT32_NON_NEGATIVE},
            "additionalProperties": False,
        },
        "submitterPodTemplate": POD_TEMPLATE,
        "rayClusterSpec": RAY_CLUSTER_SPEC,
    },
    "additionalProperties": False,
}


def _top_level(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{API_VERSION} {kind} (fields used by aei-batch)",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "RayCluster": _top_level("RayCluster", RAY_CLUSTER_SPEC),
    "RayJob": _top_level("RayJob", RAY_JOB_SPEC),
    "RayCronJob": _top_level(
        "RayCronJob",
        {
            "type": "object",
            "required": ["schedule", "timeZone", "suspend", "jobTemplate"],
            "properties": {
                "schedule": {"type": "string", "minLength": 9},
                "timeZone": {"type": "string", "minLength": 1},
                "suspend": {"type": "boolean"},
                # jobTemplate is a RayJob spec; a scheduled job must not be created suspended.
                "jobTemplate": {
                    **RAY_JOB_SPEC,
                    "properties": {k: v for k, v in RAY_JOB_SPEC["properties"].items() if k != "suspend"},
                },
            },
            "additionalProperties": False,
        },
    ),
}


class RaySchemaError(ValueError):
    """A ray.io object does not match the project's strict schema (message lists every problem)."""


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema and consistency problem of one ray.io object, as readable lines (empty list: valid)."""
    if obj.get("apiVersion") != API_VERSION:
        return [f"apiVersion must be {API_VERSION}, got {obj.get('apiVersion')!r}"]
    kind = obj.get("kind")
    if kind not in SCHEMAS:
        return [f"no schema for ray.io kind {kind!r} (known: {', '.join(sorted(SCHEMAS))})"]
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind])
    problems = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if not problems:
        problems.extend(_consistency_errors(kind, obj["spec"]))
    return problems


def validate(obj: dict[str, Any]) -> None:
    """Raise :class:`RaySchemaError` listing every problem of one ray.io object."""
    problems = schema_errors(obj)
    if problems:
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName")
        raise RaySchemaError(f"{obj.get('kind')}/{name}:\n  " + "\n  ".join(problems))


def _cluster_specs(kind: str, spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if kind == "RayCluster":
        yield "spec", spec
    elif kind == "RayJob":
        yield "spec.rayClusterSpec", spec["rayClusterSpec"]
    elif kind == "RayCronJob":
        yield "spec.jobTemplate.rayClusterSpec", spec["jobTemplate"]["rayClusterSpec"]


def _consistency_errors(kind: str, spec: dict[str, Any]) -> list[str]:
    """Rules a JSON schema cannot say: replica bounds, and what KubeRay needs to clean up after a job."""
    problems = []
    for where, cluster in _cluster_specs(kind, spec):
        autoscaled = cluster.get("enableInTreeAutoscaling", False)
        for i, group in enumerate(cluster["workerGroupSpecs"]):
            lo, n, hi = group["minReplicas"], group["replicas"], group["maxReplicas"]
            if not lo <= n <= hi:
                problems.append(f"{where}.workerGroupSpecs[{i}]: need minReplicas <= replicas <= maxReplicas")
            if not autoscaled and lo != hi:
                problems.append(
                    f"{where}.workerGroupSpecs[{i}]: minReplicas != maxReplicas without autoscaling"
                )
    job = spec if kind == "RayJob" else spec.get("jobTemplate") if kind == "RayCronJob" else None
    if job is not None and job["ttlSecondsAfterFinished"] and not job["shutdownAfterJobFinishes"]:
        problems.append("ttlSecondsAfterFinished only takes effect with shutdownAfterJobFinishes: true")
    return problems


def pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod template) for every pod template inside a ray.io object (head, worker groups, submitter)."""
    spec = obj.get("spec", {})
    jobs: list[tuple[str, dict[str, Any]]] = []
    clusters: list[tuple[str, dict[str, Any]]] = []
    if obj.get("kind") == "RayCluster":
        clusters.append(("spec", spec))
    elif obj.get("kind") == "RayJob":
        jobs.append(("spec", spec))
    elif obj.get("kind") == "RayCronJob":
        jobs.append(("spec.jobTemplate", spec.get("jobTemplate", {})))
    for where, job in jobs:
        if "submitterPodTemplate" in job:
            yield f"{where}.submitterPodTemplate", job["submitterPodTemplate"]
        if "rayClusterSpec" in job:
            clusters.append((f"{where}.rayClusterSpec", job["rayClusterSpec"]))
    for where, cluster in clusters:
        if "template" in cluster.get("headGroupSpec", {}):
            yield f"{where}.headGroupSpec.template", cluster["headGroupSpec"]["template"]
        for i, group in enumerate(cluster.get("workerGroupSpecs", [])):
            if "template" in group:
                yield f"{where}.workerGroupSpecs[{i}].template", group["template"]
