"""Label-aware cross-modal batch sampling, seeded per epoch so that a resumed run draws the same batches.

AGW's IdentitySampler (mangye16/Cross-Modal-Re-ID-baseline ``utils.py``): every batch takes ``ids``
identities present in both modalities and ``per_id`` images of each identity from each modality, with
replacement; an epoch has max(#visible, #infrared) // (ids * per_id) + 1 batches. OTLA's variant (4 x 8, the
infrared half drawn by pseudo label) is the same sampler fed pseudo labels for the infrared half. With
``independent=True`` (weak supervision: each modality has its own identity labels and no link, Zhang et al.,
ICCV 2025) the identities of the two halves are drawn separately, so the modalities may hold different
identity sets. With a ``second`` label space (MULT's released ``StageThreeSampler``: 6 clusters of the
visible space and 6 of the infrared one per batch), half the identities of every batch come from each.
With ``replacement=False`` an identity's images are drawn without replacement when it has enough, as the
PCLHD, MULT and WSL samplers do. With ``cameras`` it is PCLHD's RandomMultipleGallerySampler
(clustercontrast/utils/data/sampler.py): every cluster once per pass in a random order, and each cluster's
images an anchor plus positives from its other cameras."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vitool.errors import VitoolError


class CrossModalIdentitySampler:
    """Yields batches of dataset indices: ``ids * per_id`` visible rows, then as many infrared rows.

    ``vis_labels`` / ``ir_labels`` give the label of each visible / infrared dataset row (-1 = unused);
    ``ir_offset`` is the dataset index of the first infrared row. With no infrared label at all, batches
    hold visible rows only.
    """

    def __init__(
        self,
        vis_labels: np.ndarray,
        ir_labels: np.ndarray,
        ir_offset: int,
        ids: int,
        per_id: int,
        seed: int,
        batches: int | None = None,
        independent: bool = False,
        second: tuple[np.ndarray, np.ndarray] | None = None,
        replacement: bool = True,
        cameras: np.ndarray | None = None,
    ) -> None:
        self.ids, self.per_id, self.seed, self.replacement = ids, per_id, seed, replacement
        self.cameras = cameras  # each dataset row's camera: PCLHD's RandomMultipleGallerySampler (_pick, _images)
        self._passes: dict[str, list[int]] = {}
        self.second = None
        if second is not None:  # half the identities from each space, each half aligned across modalities
            first_ids = ids // 2
            self.second = CrossModalIdentitySampler(
                *second, ir_offset, ids - first_ids, per_id, seed, batches, replacement=replacement, cameras=cameras
            )
            ids = self.ids = first_ids
        self.visible_only = not (ir_labels >= 0).any()  # e.g. a baseline trained on visible labels alone
        vis_ids, ir_ids = np.unique(vis_labels[vis_labels >= 0]), np.unique(ir_labels[ir_labels >= 0])
        if self.visible_only:
            vis_ids = ir_ids = vis_ids
        elif not independent:
            vis_ids = ir_ids = np.intersect1d(vis_ids, ir_ids)
        if min(len(vis_ids), len(ir_ids)) < ids:
            found = (
                f"a modality has {min(len(vis_ids), len(ir_ids))} identities"
                if independent
                else f"{len(vis_ids)} identities appear in both modalities"
            )
            raise VitoolError(None, f"{found}, {ids} are needed per batch", "lower ids_per_batch or check the labels")
        self.vis_ids, self.ir_ids, self.independent = vis_ids, ir_ids, independent
        self.vis_rows = {int(k): np.flatnonzero(vis_labels == k) for k in vis_ids}
        self.ir_rows = {int(k): np.flatnonzero(ir_labels == k) + ir_offset for k in ir_ids}
        self.batches = self.epoch_length(len(vis_labels), len(ir_labels), ids, per_id, batches)

    @staticmethod
    def epoch_length(n_visible: int, n_infrared: int, ids: int, per_id: int, batches: int | None = None) -> int:
        """Batches per epoch: ``batches``, or AGW's max(#visible, #infrared) // batch + 1."""
        return batches or max(n_visible, n_infrared) // (ids * per_id) + 1

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed)
        self._passes = {}
        if self.second is not None:
            self.second._passes = {}
        for _ in range(self.batches):
            vis, ir = self._draw(rng)
            if self.second is not None:  # the second space's identities, from the same stream
                vis_2, ir_2 = self.second._draw(rng)
                vis, ir = vis + vis_2, ir + ir_2
            yield np.concatenate(vis + ir).tolist()

    def _draw(self, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One batch's visible and infrared rows, ``per_id`` of each chosen identity."""
        chosen = self._pick(rng, self.vis_ids, "visible")
        vis = [self._images(rng, self.vis_rows[int(k)]) for k in chosen]
        if self.independent:
            chosen = self._pick(rng, self.ir_ids, "infrared")
        ir = [] if self.visible_only else [self._images(rng, self.ir_rows[int(k)]) for k in chosen]
        return vis, ir

    def _pick(self, rng: np.random.Generator, ids: np.ndarray, space: str) -> np.ndarray:
        """A batch's identities: drawn afresh (AGW), or with cameras the next ones of a pass that takes every
        identity once in a random order, a new pass when fewer than a batch are left (the released
        ``drop_last``)."""
        if self.cameras is None:
            return rng.choice(ids, self.ids, replace=False)
        left = self._passes.get(space, [])
        if len(left) < self.ids:
            left = rng.permutation(ids).tolist()
        self._passes[space] = left[self.ids :]
        return np.array(left[: self.ids])

    def _images(self, rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
        """``per_id`` of an identity's rows: with replacement (AGW), or without where it has enough (the
        PCLHD, MULT and WSL samplers), so that a large cluster does not repeat an image in one batch. With
        cameras, PCLHD's: one random anchor, the others from the anchor's other cameras (from its own camera
        only when the cluster has one), without replacement when there are ``per_id`` or more."""
        if self.cameras is None:
            return rng.choice(rows, self.per_id, replace=self.replacement or len(rows) < self.per_id)
        anchor = rng.choice(rows)
        others = rows[self.cameras[rows] != self.cameras[anchor]]
        if len(others) == 0:  # one camera: the others from it; a one-image cluster repeats its image
            others = rows[rows != anchor] if len(rows) > 1 else rows
        rest = rng.choice(others, self.per_id - 1, replace=len(others) < self.per_id)
        return np.concatenate([[anchor], rest])
