"""Layer-independent helpers shared by the built-in layers."""
from __future__ import annotations

from typing import Callable, Optional

import torch.nn.functional as F
from torch import Tensor


def transform_aggregate(h: Tensor, weight: Tensor, aggregate: Callable[[Tensor], Tensor],
                        bias: Optional[Tensor] = None) -> Tensor:
    """Return ``aggregate(h) @ weight.T + bias`` computed in the cheaper order.

    ``aggregate`` must be linear in its input and act on rows (``[num_src, d] -> [num_dst, d]``,
    e.g. a weighted sum or mean over in-edges), so it commutes with the linear map. When the
    layer narrows (``d_out < d_in``) the weight is applied first and the sparse kernel runs on
    the narrower rows (as DGL does: 1.8-1.9x faster at hidden 256 -> 16 classes); otherwise the
    aggregation runs first.

    Args:
        h: ``[num_src, d_in]``.
        weight: ``[d_out, d_in]`` (an ``nn.Linear`` weight, no bias).
        aggregate: the linear row operator.
        bias: optional ``[d_out]`` added to the result.

    Returns:
        ``[num_dst, d_out]``.
    """
    if weight.shape[0] < weight.shape[1]:
        out = aggregate(F.linear(h, weight))
        return out if bias is None else out + bias
    return F.linear(aggregate(h), weight, bias)
