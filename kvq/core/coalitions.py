"""Rule masks (coalitions) in kvq's binary order, and their grouping for compilation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def all_masks(n: int) -> np.ndarray:
    """All 2^n masks as int8 [2^n, n]: mask k has rule j on iff bit j of k is set."""
    k = np.arange(2**n)[:, None]
    return ((k >> np.arange(n)[None, :]) & 1).astype(np.int8)


def mask_index(mask: Sequence[int]) -> int:
    """Position of a 0/1 mask [n] in :func:`all_masks` order."""
    return int(sum(int(bool(b)) << j for j, b in enumerate(mask)))


def group_by_pattern(masks: np.ndarray, expensive: Sequence[int]) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Split masks [M, n] by the on/off pattern of the ``expensive`` rules.

    Returns ``[(pattern, indices)]`` where ``pattern`` is the tuple of expensive rule
    indices that are ON for every mask in ``indices`` (int array into ``masks``).
    Groups come in order of first appearance.
    """
    expensive = list(expensive)
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, m in enumerate(masks):
        key = tuple(j for j in expensive if m[j])
        groups.setdefault(key, []).append(k)
    return [(key, np.asarray(idx)) for key, idx in groups.items()]
