"""The feature-set registry: every named, versioned set by name.

The built-in modules (`audio`, `rich`, `voice`) only define their sets (`FEATURE_SETS`); this module collects
them the first time a set is asked for, so importing `aei_batch` stays light and no feature module imports
the registry back (tests/unit/test_layers.py). `register()` adds a set of one's own.
"""

from __future__ import annotations

from aei_batch.errors import ConfigError
from aei_batch.features.base import FeatureSet

_REGISTRY: dict[str, FeatureSet] = {}
_BUILTIN_LOADED = False


def register(fs: FeatureSet) -> FeatureSet:
    _REGISTRY[fs.name] = fs
    return fs


def _load_builtin() -> None:
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    from aei_batch.features import audio, rich, voice

    for fs in (*audio.FEATURE_SETS, *rich.FEATURE_SETS, *voice.FEATURE_SETS):
        _REGISTRY.setdefault(fs.name, fs)
    _BUILTIN_LOADED = True


def get_feature_set(name: str) -> FeatureSet:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown feature set {name!r}", hint=f"choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None


def list_feature_sets() -> list[FeatureSet]:
    _load_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
