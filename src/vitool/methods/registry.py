"""Methods by name: ``vitool train --method NAME`` builds what is registered under NAME.

vitool's own methods are registered below. Another package adds one through the Python entry-point group
``vitool.methods``: an entry ``mine = "my_package.module:register"`` names a function that calls
:func:`register` (docs/extending.md walks through a complete example). Options of such a method are keys
of its ``options`` dataclass: flat in the TOML file and ``--set KEY=VALUE`` like vitool's own, and handed
to the method's factory as that dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from vitool.errors import VitoolError
from vitool.methods.contract import Method

ENTRY_POINT_GROUP = "vitool.methods"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``build(config, samples) -> Method``; ``options`` is the dataclass of the
    method's own configuration keys (None for vitool's built-in methods, whose keys are TrainConfig's)."""

    name: str
    build: Callable[..., Method]
    summary: str
    options: type | None = None


_REGISTRY: dict[str, MethodSpec] = {}
_loaded_plugins = False


def register(name: str, build: Callable[..., Method], summary: str, options: type | None = None) -> None:
    """Make ``--method name`` build ``build(config, samples)``."""
    if options is not None and not dataclasses.is_dataclass(options):
        raise TypeError(f"method {name}: options must be a dataclass")
    _REGISTRY[name] = MethodSpec(name, build, summary, options)


def _load_plugins() -> None:
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()()
        except Exception as exc:  # a broken plugin must not take vitool's own methods down
            raise VitoolError(
                None,
                f"the vitool.methods plugin '{entry.name}' ({entry.value}) failed to load: {exc}".replace("\n", " "),
                "fix or uninstall that package",
            ) from None


def methods() -> dict[str, MethodSpec]:
    """Every registered method, vitool's own first, then those of installed plugins."""
    _load_plugins()
    return dict(_REGISTRY)


def method_spec(name: str) -> MethodSpec:
    registered = methods()
    if name not in registered:
        raise VitoolError(None, f"unknown method '{name}'", f"use one of {', '.join(registered)}")
    return registered[name]


def plugin_option_keys() -> dict[str, str]:
    """Every plugin option key and the method it belongs to (TOML files and ``--set`` accept them)."""
    keys = {}
    for spec in methods().values():
        if spec.options is not None:
            keys.update({f.name: spec.name for f in dataclasses.fields(spec.options)})
    return keys


def build_method(config, samples) -> Method:
    """The method ``config.method`` names, for these training samples."""
    spec = method_spec(config.method)
    if spec.options is None:
        return spec.build(config, samples)
    own = {f.name for f in dataclasses.fields(spec.options)}
    values = {k: v for k, v in config.method_options.items() if k in own}
    try:
        options = spec.options(**values)
    except (TypeError, ValueError) as exc:
        raise VitoolError(None, f"options of method {spec.name}: {exc}", "see the method's documentation") from None
    return spec.build(config, samples, options)


# ------------------------------------------------------------------------------------ vitool's own methods


def _supervised(config, samples) -> Method:
    import numpy as np

    from vitool.methods.supervised import Supervised

    if config.labels:
        raise VitoolError(config.labels, "--labels is not used by the supervised method", "drop it, or use otla")
    return Supervised(np.array([s.pid for s in samples]))


def _otla(use_infrared: bool) -> Callable[..., Method]:
    def build(config, samples) -> Method:
        from vitool.methods.otla import OTLA

        return OTLA(config, samples, use_infrared=use_infrared)

    return build


def _experts(config, samples) -> Method:
    from vitool.methods.experts import Experts

    return Experts(config, samples)


def _clustering(name: str) -> Callable[..., Method]:
    def build(config, samples) -> Method:
        if config.labels:
            raise VitoolError(config.labels, f"--labels is not used by {name}", "it clusters every epoch")
        if name == "dcl":
            from vitool.methods.contrast import ClusterContrast as cls
        elif name == "pclhd":
            from vitool.methods.pclhd import PCLHD as cls
        else:
            from vitool.methods.mult import MULT as cls
        return cls(config, samples)

    return build


def _register_builtin() -> None:
    builtin: list[tuple[str, Callable[..., Method], str]] = [
        ("supervised", _supervised, "AGW on identities linked across modalities: the upper bound"),
        ("otla", _otla(True), "OTLA: visible labels, infrared labels by optimal transport (semi-supervised)"),
        ("visible", _otla(False), "OTLA's baseline: the visible labels only"),
        ("experts", _experts, "heterogeneous experts: identities inside each modality, no link (weak)"),
        ("dcl", _clustering("dcl"), "per-modality clusters, no association: the unsupervised baseline"),
        ("pclhd", _clustering("pclhd"), "PCLHD: hard and dynamic prototypes (unsupervised)"),
        ("mult", _clustering("mult"), "MULT: consistent label transfer between modalities (unsupervised)"),
    ]
    for name, build, summary in builtin:
        register(name, build, summary)


_register_builtin()


def describe() -> dict[str, Any]:
    """Name -> summary of every registered method (for --help and docs)."""
    return {name: spec.summary for name, spec in methods().items()}
