"""recon3d.edit: render-and-refine editing of a reconstructed photo.

* :func:`rotate_face` / :func:`rotate_views` / :func:`frontalize`: re-pose the head inside the
  whole photo (face re-rendered with the completed texture relit by the fitted SH; background and
  hair warped over an anchor mesh; see :mod:`recon3d.edit.rotate`).
* :func:`deocclude` / :func:`detect_occlusion`: find the face pixels the fitted model cannot
  explain and replace them with the 3D face, Poisson-blended (thesis ch. 5 ``I_p``; see
  :mod:`recon3d.edit.deocclude`).
* :func:`recon3d.edit.restore.restore` (also ``recon3d.restore``): restore every face of a photo with
  the face restorer network (aligned, restored, pasted back); :func:`restore_views` refines rendered
  views (``rotate --restore``), :func:`restore_photo` a photo before reconstruction (see
  :mod:`recon3d.edit.restore`).

All take a :class:`recon3d.reconstruct.Reconstruction` and check its shapes (and those of the
user's arrays: ``poses``, ``mask``, ``image`` / ``lmk_px``) with :func:`recon3d._checks.check_shapes`,
raising :class:`recon3d.errors.ShapeError`. The torch maths runs on the reconstruction's device and
floating dtype (``rec.image``); numpy-only steps (Poisson, morphology, warp, anchors, dlib) get their
arrays through one named conversion, :func:`recon3d.edit._common.to_numpy`, and the tensors of the
results are on the reconstruction's device. See docs/EDITING.md.
"""

from ..ops.warp import WarpResult, triangulate
from ..render.warp import warp_triangles
from .deocclude import DeoccludeResult, OcclusionEstimate, deocclude, detect_occlusion
from .restore import RestoredFace, RestoreResult, restore_photo, restore_view, restore_views
from .rotate import RotateResult, frontalize, mesh_boundary_vertices, rotate_face, rotate_views, view_report
from .synthetic import make_synthetic_reconstruction

__all__ = [
    "rotate_face", "rotate_views", "frontalize", "RotateResult", "mesh_boundary_vertices", "view_report",
    "deocclude", "detect_occlusion", "DeoccludeResult", "OcclusionEstimate",
    "warp_triangles", "triangulate", "WarpResult", "make_synthetic_reconstruction",
    "RestoreResult", "RestoredFace", "restore_photo", "restore_view", "restore_views",
]
