"""vitool: label-efficient visible-infrared person re-identification (docs/api.md for the Python API).

The names below are loaded on first use, so ``import vitool`` stays fast and imports neither torch nor
h5py until a function needs them.
"""

__version__ = "0.1.0"

_API = (
    "EvaluationResult",
    "FeatureSet",
    "LabelSet",
    "MethodCheckError",
    "Rerank",
    "TestSet",
    "assign_labels",
    "check_method",
    "cluster_features",
    "convert_checkpoint",
    "evaluate",
    "extract_features",
    "load_model",
    "load_test_set",
    "protocol_trials",
    "read_features",
    "read_labels",
    "write_features",
    "write_labels",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from vitool import api

        return getattr(api, name)
    if name == "stages":  # each command whole, file in and file out (docs/api.md)
        import vitool.stages

        return vitool.stages
    raise AttributeError(f"module 'vitool' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
