"""Methods by name: ``vitool train --method NAME`` builds what is registered under NAME.

vitool's own methods are registered below. Another package adds one through the Python entry-point group
``vitool.methods``: an entry ``mine = "my_package.module:register"`` names a function that calls
:func:`register` (docs/extending.md walks through a complete example). A method's options are the fields
of its ``options`` dataclass, which validates them: flat keys in the TOML file and ``--set KEY=VALUE``
beside the engine's own, handed to the method's factory as that dataclass.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from vitool.errors import VitoolError
from vitool.methods.contract import Method, RunSetup

ENTRY_POINT_GROUP = "vitool.methods"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``build(config, samples[, options]) -> Method``. ``options`` is the dataclass of
    the method's own configuration keys, or ``"module:Class"`` naming it (vitool's own methods, so that
    the CLI starts without importing torch); a method without keys of its own has none."""

    name: str
    build: Callable[..., Method]
    summary: str
    options: type | str | None = None

    def options_class(self) -> type | None:
        if not isinstance(self.options, str):
            return self.options
        module, _, cls = self.options.partition(":")
        return getattr(importlib.import_module(module), cls)


_REGISTRY: dict[str, MethodSpec] = {}
_loaded_plugins = False


def register(
    name: str, build: Callable[..., Method], summary: str, options: type | str | None = None, replace: bool = False
) -> None:
    """Make ``--method name`` build ``build(setup, samples, options)`` (``build(setup, samples)`` for a
    method without options of its own): ``setup`` is the run's ``RunSetup`` (method, seed, labels file).
    A name already taken is refused unless ``replace``: two plugins (or a plugin and vitool) must not
    silently swap the method a recipe names."""
    if options is not None and not isinstance(options, str) and not dataclasses.is_dataclass(options):
        raise TypeError(f"method {name}: options must be a dataclass")
    if name in _REGISTRY and not replace:
        raise ValueError(f"method {name!r} is already registered; pick another name, or pass replace=True")
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


def option_keys() -> dict[str, list[str]]:
    """Every method option key and the methods it belongs to (TOML files and ``--set`` accept them all,
    so that one file can serve several methods; each method reads its own)."""
    keys: dict[str, list[str]] = {}
    for spec in methods().values():
        cls = spec.options_class()
        for f in dataclasses.fields(cls) if cls is not None else ():
            keys.setdefault(f.name, []).append(spec.name)
    return keys


def read_by(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the method options that ``method`` does not read (what one set of overrides
    for several methods gives each: an override the method would ignore is an error in load_config)."""
    readers = option_keys()
    return {k: v for k, v in values.items() if k not in readers or method in readers[k]}


def method_options(method: str, values: dict[str, Any], where=None) -> Any:
    """The options dataclass of ``method`` from flat ``values`` (keys of other methods are not its own and
    are left out), validated by the dataclass; None for a method without options."""
    spec = method_spec(method)
    cls = spec.options_class()
    if cls is None:
        return None
    own = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in values.items() if k in own})
    except (TypeError, ValueError) as exc:
        raise VitoolError(where, f"method {spec.name}: {exc}") from None


def build_method(config, samples) -> Method:
    """The method ``config.method`` names, for these training samples, with its options; it receives the
    run's seed and labels file (a ``RunSetup``), not the whole configuration."""
    spec = method_spec(config.method)
    options = method_options(config.method, config.method_options)
    setup = RunSetup(config.method, config.seed, config.labels)
    return spec.build(setup, samples) if options is None else spec.build(setup, samples, options)


# ------------------------------------------------------------------------------------ vitool's own methods


def _supervised(setup: RunSetup, samples) -> Method:
    import numpy as np

    from vitool.methods.supervised import Supervised

    if setup.labels:
        raise VitoolError(setup.labels, "--labels is not used by the supervised method", "drop it, or use otla")
    return Supervised(np.array([s.pid for s in samples]))


def _lazy(target: str, clusters: bool = False, **kwargs: Any) -> Callable[..., Method]:
    """A builder of ``module:Class`` that imports it when a run starts (the command line lists the methods
    without importing torch); ``clusters``: the method makes its own labels and refuses a labels file."""

    def build(setup: RunSetup, samples, options) -> Method:
        if clusters and setup.labels:
            raise VitoolError(setup.labels, f"--labels is not used by {setup.method}", "it clusters every epoch")
        module, name = target.split(":")
        return getattr(importlib.import_module(module), name)(setup, samples, options, **kwargs)

    return build


def _register_builtin() -> None:
    otla, experts = "vitool.methods.otla:OTLAOptions", "vitool.methods.experts:ExpertsOptions"
    dcl, pclhd, mult = (
        "vitool.methods.contrast:ClusteringOptions",
        "vitool.methods.pclhd:PCLHDOptions",
        "vitool.methods.mult:MULTOptions",
    )
    builtin: list[tuple[str, Callable[..., Method], str, str | None]] = [
        ("supervised", _supervised, "AGW on identities linked across modalities: the upper bound", None),
        ("otla", _lazy("vitool.methods.otla:OTLA", use_infrared=True),
         "OTLA: visible labels, infrared labels by optimal transport (semi-supervised)", otla),
        ("visible", _lazy("vitool.methods.otla:OTLA", use_infrared=False),
         "OTLA's baseline: the visible labels only", otla),
        ("experts", _lazy("vitool.methods.experts:Experts"),
         "heterogeneous experts: identities inside each modality, no link (weak)", experts),
        ("dcl", _lazy("vitool.methods.contrast:ClusterContrast", clusters=True),
         "per-modality clusters, no association: the unsupervised baseline", dcl),
        ("pclhd", _lazy("vitool.methods.pclhd:PCLHD", clusters=True),
         "PCLHD: hard and dynamic prototypes (unsupervised)", pclhd),
        ("mult", _lazy("vitool.methods.mult:MULT", clusters=True),
         "MULT: consistent label transfer between modalities (unsupervised)", mult),
    ]  # fmt: skip
    for name, build, summary, options in builtin:
        register(name, build, summary, options)


_register_builtin()


def describe() -> dict[str, Any]:
    """Name -> summary of every registered method (for --help and docs)."""
    return {name: spec.summary for name, spec in methods().items()}
