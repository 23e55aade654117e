"""Label-aware cross-modal batch sampling, seeded per epoch so that a resumed run draws the same batches.

AGW's IdentitySampler (ref-otla-eval.md §3): every batch takes ``ids`` identities present in both
modalities and ``per_id`` images of each identity from each modality, with replacement; an epoch has
max(#visible, #infrared) // (ids * per_id) + 1 batches. OTLA's variant (4 x 8, the infrared half drawn by
pseudo label) is the same sampler fed pseudo labels for the infrared half.
"""

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
    ) -> None:
        self.ids, self.per_id, self.seed = ids, per_id, seed
        self.visible_only = not (ir_labels >= 0).any()  # e.g. a baseline trained on visible labels alone
        if self.visible_only:
            shared = np.unique(vis_labels[vis_labels >= 0])
        else:
            shared = np.intersect1d(vis_labels[vis_labels >= 0], ir_labels[ir_labels >= 0])
        if len(shared) < ids:
            raise VitoolError(
                None,
                f"{len(shared)} identities appear in both modalities, {ids} are needed per batch",
                "lower ids_per_batch or check the labels",
            )
        self.shared = shared
        self.vis_rows = {int(k): np.flatnonzero(vis_labels == k) for k in shared}
        self.ir_rows = {int(k): np.flatnonzero(ir_labels == k) + ir_offset for k in shared}
        self.batches = batches or max(len(vis_labels), len(ir_labels)) // (ids * per_id) + 1

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed)
        for _ in range(self.batches):
            chosen = rng.choice(self.shared, self.ids, replace=False)
            vis = [rng.choice(self.vis_rows[int(k)], self.per_id) for k in chosen]
            ir = [] if self.visible_only else [rng.choice(self.ir_rows[int(k)], self.per_id) for k in chosen]
            yield np.concatenate(vis + ir).tolist()
