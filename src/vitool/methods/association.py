"""The per-epoch cross-modal association of the unsupervised methods' clusters, by name (``association``
in the config: hungarian (PGM), mult (MULT), ot (OTLA), oracle (a diagnostic that reads the hidden
identities), shuffled (the broken-association control: the oracle with every link to a wrong person)),
through ``vitool.assign.assign``, the function behind `vitool assign-labels`."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitool.distributed import computed_on_main
from vitool.errors import VitoolError
from vitool.methods.memory import MODALITIES
from vitool.modality import INFRARED, MODALITY_OF, VISIBLE

ASSOCIATIONS = ("hungarian", "mult", "ot", "oracle", "shuffled")


def oracle_clusters(pid: np.ndarray, modality: np.ndarray) -> np.ndarray:
    """Diagnostic only (``cluster_oracle = true``): each modality's true identities as its clusters,
    numbered as `vitool cluster` numbers clusters (visible 0..K_V-1, infrared after)."""
    if (pid < 0).any():
        raise VitoolError(None, "cluster_oracle needs the training identities", "use a labelled dataset")
    intra = np.empty(len(pid), dtype=np.int64)
    offset = 0
    for m in MODALITIES:
        own = modality == m
        intra[own] = np.unique(pid[own], return_inverse=True)[1] + offset
        offset = int(intra[own].max()) + 1
    return intra


def shuffled_identities(pid: np.ndarray, modality: np.ndarray, seed: int = 0) -> np.ndarray:
    """Control only (the broken association): the identities with the infrared images' ones moved along
    one random cycle over the identities both modalities have, so that every cross-modal link the truth
    would give names another person while each modality's own grouping stays right. A benchmark on which
    a method with this association is not below its baseline cannot tell a right association from a
    wrong one."""
    shared = np.intersect1d(pid[modality == VISIBLE], pid[modality == INFRARED])
    shared = shared[shared >= 0]
    if len(shared) < 2:
        raise VitoolError(None, "the shuffled control needs two identities seen in both modalities", "add identities")
    cycle = np.random.default_rng([seed, 31]).permutation(shared)
    moved = dict(zip(cycle.tolist(), np.roll(cycle, 1).tolist(), strict=True))
    out = pid.copy()
    ir = np.flatnonzero(modality == INFRARED)
    out[ir] = [moved.get(int(p), int(p)) for p in pid[ir]]
    return out


def oracle_association(pid: np.ndarray, modality: np.ndarray, intra: np.ndarray, space: str):
    """Diagnostic only (``association = "oracle"``): each image of the other modality takes the largest
    cluster of ``space`` whose majority identity is its own (none if there is none). It reads the
    hidden identities, so it measures what a perfect association of these clusters would give."""
    from vitool.assign import Assignment
    from vitool.evaluation.diagnostics import majority_identity

    in_space = modality == MODALITY_OF[space]
    own = in_space & (intra >= 0)
    owner = majority_identity(intra[own], pid[own])
    ids, sizes = np.unique(intra[own], return_counts=True)
    best: dict[int, int] = {}
    for cluster in ids[np.argsort(-sizes, kind="stable")].tolist():
        best.setdefault(owner[cluster], cluster)
    label = intra.copy()
    label[~in_space] = [best.get(int(p), -1) for p in pid[~in_space]]
    return Assignment(label=label, intra_label=intra, attrs={"space": space})


def associate(
    name: str,
    features: np.ndarray,
    modality: np.ndarray,
    intra: np.ndarray,
    space: str,
    options,
    pid=None,
    device: str = "auto",
    seed: int = 0,
):
    """Cross-modal association of this epoch's clusters through ``vitool.assign.assign``. ``space``
    (visible | infrared) is the modality whose cluster ids the other takes, for the methods that can
    choose it (hungarian, mult); ot always ends in the visible space. The result's ``attrs["space"]``
    says which space it is. ``options``: the method's CrossStageOptions (mult's alpha, soft weight, k1, k2);
    ``device``: where mult computes (the model's device in training); ``seed``: the shuffled control's cycle."""
    from vitool.assign import assign

    if name not in ASSOCIATIONS:
        raise VitoolError(None, f"association '{name}'", f"use one of {', '.join(ASSOCIATIONS)}")
    if name in ("oracle", "shuffled"):
        if pid is None or (pid < 0).any():
            raise VitoolError(None, f"association '{name}' needs the training identities", "use a labelled dataset")
        if name == "shuffled":
            pid = shuffled_identities(pid, modality, seed)
        return oracle_association(pid, modality, intra, space)
    params: dict[str, Any] = {}
    if name in ("hungarian", "mult"):
        params["space"] = space
    if name == "mult":
        params |= {
            "alpha": options.mult_alpha,
            "soft_weight": options.mult_soft_weight,
            "k1": options.cluster_k1,
            "k2": options.cluster_k2,
            "device": device,
        }
    result = computed_on_main(assign, name, features, modality, intra, where="this epoch's clusters", **params)
    result.attrs.setdefault("space", "visible")
    return result


def associate_spaces(
    name: str,
    features: np.ndarray,
    modality: np.ndarray,
    intra: np.ndarray,
    options,
    pid=None,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """The association in both label spaces, by space name (MULT's released cross stage uses both every
    epoch). MULT's transfer computes them together; hungarian and oracle run once per space; ot ends in
    the visible space only, so it gives that one alone."""
    if name != "mult":
        spaces = ("visible",) if name == "ot" else ("visible", "infrared")
        return {
            space: associate(name, features, modality, intra, space, options, pid, device, seed) for space in spaces
        }
    from vitool.assign import check_modalities
    from vitool.assign.mult import mult_transfer

    check_modalities(modality, intra, "this epoch's clusters")
    params = dict(alpha=options.mult_alpha, soft_weight=options.mult_soft_weight, k1=options.cluster_k1)
    return computed_on_main(mult_transfer, features, modality, intra, **params, k2=options.cluster_k2, device=device)
