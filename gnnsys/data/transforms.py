"""Per-node feature transforms applied at load time (each depends on one row only, so a shard
computes exactly what the whole graph would)."""
from __future__ import annotations

from torch import Tensor

FEATURE_NORMS = ("none", "row")


def normalize_features(feat: Tensor, how: str) -> Tensor:
    """Return ``feat`` transformed by ``how``.

    Args:
        feat: ``[N, F]`` node features.
        how: ``"none"`` (returned unchanged) or ``"row"``: every row divided by its L1 norm
            (Kipf & Welling's preprocessing; all-zero rows stay zero).

    Returns:
        A tensor of the same shape and dtype (a new one for ``"row"``).
    """
    if how == "none":
        return feat
    if how == "row":
        norm = feat.abs().sum(dim=1, keepdim=True)
        return feat / norm.clamp(min=1e-12)
    raise ValueError(f"unknown feature normalisation {how!r}; expected one of {FEATURE_NORMS}")
