"""The feature-set registry: every named, versioned set.

The built-in modules (`audio`, `rich`, `voice`) only define their sets (`FEATURE_SETS`); this module collects
them the first time a set is asked for, so importing `aei_batch` stays light and no feature module imports
the registry back (tests/unit/test_layers.py). `register()` adds a set of one's own.

A set is asked for by name (`voice_audio`: its newest version, what `train` uses) or by its id
(`voice_audio@v1`: that version exactly). Older versions stay registered so that a model trained on one
keeps loading and scoring with the extractor it was trained on (models/loader.py checks the hash); the
stages pass `FeatureSet.id` around, never the bare name.
"""

from __future__ import annotations

from aei_batch.errors import ConfigError
from aei_batch.features.base import FeatureSet

_REGISTRY: dict[str, dict[int, FeatureSet]] = {}
_BUILTIN_LOADED = False


def register(fs: FeatureSet) -> FeatureSet:
    _REGISTRY.setdefault(fs.name, {})[fs.version] = fs
    return fs


def _load_builtin() -> None:
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    from aei_batch.features import audio, rich, voice

    for fs in (*audio.FEATURE_SETS, *rich.FEATURE_SETS, *voice.FEATURE_SETS):
        _REGISTRY.setdefault(fs.name, {}).setdefault(fs.version, fs)
    _BUILTIN_LOADED = True


def get_feature_set(name: str, version: int | None = None) -> FeatureSet:
    """The set called `name` (its newest version), `name@vN`, or `name` at `version`."""
    _load_builtin()
    if version is None and "@v" in name:
        name, _, v = name.rpartition("@v")
        version = int(v) if v.isdigit() else -1
    versions = _REGISTRY.get(name)
    if not versions:
        raise ConfigError(
            f"unknown feature set {name!r}", hint=f"choose one of: {', '.join(sorted(_REGISTRY))}"
        )
    if version is None:
        return versions[max(versions)]
    try:
        return versions[version]
    except KeyError:
        raise ConfigError(
            f"feature set {name!r} has no version {version}",
            hint=f"this aei_batch has {', '.join(versions[v].id for v in sorted(versions))}",
        ) from None


def list_feature_sets(all_versions: bool = False) -> list[FeatureSet]:
    """The newest version of every set, by name (with `all_versions`, every registered version)."""
    _load_builtin()
    if all_versions:
        return [fs for k in sorted(_REGISTRY) for _, fs in sorted(_REGISTRY[k].items())]
    return [_REGISTRY[k][max(_REGISTRY[k])] for k in sorted(_REGISTRY)]
