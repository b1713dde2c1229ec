"""The result of :func:`recon3d.reconstruct.reconstruct`: one reconstructed face (data only).

The work on a :class:`Reconstruction` lives with the layer that owns it: the textured mesh, the JSON
parameters and the output folder in :mod:`recon3d.io.export` (:func:`~recon3d.io.export.reconstruction_mesh`,
:func:`~recon3d.io.export.reconstruction_params`, :func:`~recon3d.io.export.write_reconstruction`), the
overlay rendering and the saved folder in :func:`recon3d.reconstruct.render_overlay` and
:func:`recon3d.reconstruct.save_reconstruction`. The 0.1 methods :meth:`Reconstruction.mesh`,
:meth:`~Reconstruction.params`, :meth:`~Reconstruction.overlay` and :meth:`~Reconstruction.save` still work
for one release: they warn and call those functions.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

if TYPE_CHECKING:
    from ..fitting import FitResult
    from ..morphable.model import MorphableModel
    from .mesh import Mesh

__all__ = ["Reconstruction"]


@dataclass(frozen=True)
class Reconstruction:
    """One reconstructed face.

    Attributes:
        image: ``(H, W, 3)`` float32 input image (EXIF-upright, RGB, [0, 1]).
        name: stem used for output files.
        image_path: source file or None.
        lmk_detected_px: ``(68, 2)`` landmarks the fit used.
        detection_method: which detector stage found the face (or ``"user"``).
        fit: the :class:`recon3d.fitting.FitResult` (batch of one).
        model: the morphable model used.
        verts_model: ``(V, 3)`` fitted vertices, model frame, metres.
        texture: ``(Ht, Wt, 3)`` completed UV texture.
        texture_visible: ``(Ht, Wt, 3)`` visible-only texture (zeros where unseen).
        texture_mask: ``(Ht, Wt)`` float visibility/confidence of ``texture_visible``.
        timings: seconds per stage.
    """

    image: torch.Tensor
    name: str
    image_path: Path | None
    lmk_detected_px: torch.Tensor
    detection_method: str
    fit: FitResult
    model: MorphableModel
    verts_model: torch.Tensor
    texture: torch.Tensor
    texture_visible: torch.Tensor
    texture_mask: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pose_deg(self) -> dict[str, float]:
        """The fitted head pose in degrees: ``{"yaw", "pitch", "roll"}``."""
        ypr = self.fit.pose_deg[0].tolist()
        return {"yaw": ypr[0], "pitch": ypr[1], "roll": ypr[2]}

    # -- deprecated conveniences (0.1 API); they delegate to the layer that owns the work ----------
    def mesh(self, *, texture: str = "completed") -> Mesh:
        """Deprecated: use :func:`recon3d.io.export.reconstruction_mesh`."""
        from ..io.export import reconstruction_mesh  # deprecated method: io.export imports this module

        _deprecated("mesh()", "recon3d.io.export.reconstruction_mesh(rec)")
        return reconstruction_mesh(self, texture=texture)

    def params(self) -> dict:
        """Deprecated: use :func:`recon3d.io.export.reconstruction_params`."""
        from ..io.export import reconstruction_params  # deprecated method: io.export imports this module

        _deprecated("params()", "recon3d.io.export.reconstruction_params(rec)")
        return reconstruction_params(self)

    def overlay(self, *, alpha: float = 1.0) -> torch.Tensor:
        """Deprecated: use :func:`recon3d.reconstruct.render_overlay`."""
        from ..reconstruct import render_overlay  # deprecated method: the API layer renders

        _deprecated("overlay()", "recon3d.reconstruct.render_overlay(rec)")
        return render_overlay(self, alpha=alpha)

    def save(self, out_dir: str | os.PathLike, *, formats: Sequence[str] = ("obj",), extras: bool = True) -> list[Path]:
        """Deprecated: use :func:`recon3d.save_reconstruction` (``recon3d.reconstruct.save_reconstruction``)."""
        from ..reconstruct import save_reconstruction  # deprecated method: the API layer renders

        _deprecated("save()", "recon3d.save_reconstruction(rec, out_dir)")
        return save_reconstruction(self, out_dir, formats=formats, extras=extras)


def _deprecated(method: str, use: str) -> None:
    warnings.warn(f"Reconstruction.{method} is deprecated and goes away in recon3d 0.3 (a Reconstruction is "
                  f"data only); use {use}", DeprecationWarning, stacklevel=3)
