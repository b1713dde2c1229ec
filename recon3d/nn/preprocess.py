"""Network input normalisation: the one helper every network in :mod:`recon3d.nn` uses."""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["standardise"]


def standardise(x: torch.Tensor, mean: float | Sequence[float], std: float | Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` for ``(B, C, H, W)`` images; ``mean`` and ``std`` are scalars or one value
    per channel (each network keeps its own constants).

    >>> standardise(torch.full((1, 3, 1, 1), 0.75), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).flatten().tolist()
    [1.0, 1.0, 1.0]
    >>> standardise(torch.full((1, 3, 1, 1), 0.75), 0.5, 0.25).flatten().tolist()
    [1.0, 1.0, 1.0]
    """
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    if m.ndim == 1:
        m = m.view(1, -1, 1, 1)
    if s.ndim == 1:
        s = s.view(1, -1, 1, 1)
    return (x - m) / s
