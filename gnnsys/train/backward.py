"""Back-propagation of a mean loss with the halo gradients kept in the codec's range.

A full-graph loss is a mean over every train node of the graph, so the gradient of a hidden row
is of the order of 1 / (train nodes): 1e-5 to 1e-6 on graphs of 10^5 train nodes. Quantized
halo gradients travel with fp16 row headers (``lo``, ``scale``: :mod:`gnnsys.comm.codec`), and
at 4 or 8 bits ``scale`` underflows fp16 for such rows, which then decode to their midpoint.
:func:`backward_mean` back-propagates the loss times the power of two nearest the count and
divides the parameter gradients by it afterwards. Scaling by a power of two is exact in
floating point (short of overflow), so the parameter gradients are bit for bit those of the
plain mean, while the rows that travel are O(1).
"""
from __future__ import annotations

import math
from typing import Iterable

from torch import Tensor, nn


def backward_mean(loss_sum: Tensor, count: int, parameters: Iterable[nn.Parameter]) -> None:
    """Back-propagate ``loss_sum / count`` into ``parameters``' ``.grad``.

    Takes the summed loss of this rank's rows, the global number of rows the mean is over and
    the model's parameters, whose gradients must be unset (``zero_grad(set_to_none=True)``):
    they are divided by the scale afterwards, so earlier gradients would be too. Returns
    nothing; raises ``ValueError`` when a gradient is already set.
    """
    parameters = list(parameters)
    if any(param.grad is not None for param in parameters):
        raise ValueError("backward_mean: gradients must be unset (zero_grad(set_to_none=True))")
    scale = 2.0 ** round(math.log2(max(count, 1)))
    ((loss_sum / max(count, 1)) * scale).backward()
    for param in parameters:
        if param.grad is not None:
            param.grad.mul_(1.0 / scale)
