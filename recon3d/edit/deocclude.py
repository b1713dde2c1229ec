"""Face de-occlusion with the 3D face as the prior (thesis ch. 5, training-free).

The thesis defines the occlusion mask as the rendered 3DMM face region minus the visible face
region, ``M_o = M_m - M_m * M_f`` (eq. 5.1), and supervises its generator with ``I_p``, the
Poisson blend of the visible face and the rendered 3D face. Without a parsing network we find the
visible face region ``M_f`` from the robust photometric fit itself:

1. Render the fitted 3DMM (its albedo, lit by the fitted SH) and the model's region labels.
2. Per face pixel, compare the photo with that prediction in a lighting-normalised colour space:
   ``log(R/G)``, ``log(B/G)`` and ``log(luma)``, each minus the same quantity of the prediction.
   The model explains skin up to a per-image offset, so a Gaussian is fitted (robustly: median/MAD
   start, then mean/covariance of the inliers, twice) to the skin pixels of this same image.
3. Skin-region pixels whose Mahalanobis distance exceeds ``threshold`` are occluders. Eyes,
   brows and lips are not skin-coloured, so there the occluder mask only grows from adjacent
   occluded skin into pixels that are also far (half the threshold) from the skin model; this
   lets sunglasses cover the eyes but keeps bare eyes and lips visible.
4. Hysteresis: the occluder blobs found so far (seeds) grow through connected face pixels whose
   distance exceeds ``_HYST_LOW`` times the threshold (weak evidence counts only next to strong
   evidence; an isolated weak patch is not an occluder).
5. Morphological cleanup scaled by the face size: opening, removal of small blobs, closing,
   hole filling. A band along the rendered silhouette (2% of the face size) is never called
   occluded (fit misalignment there is not an occluder).

By default (``cue="auto"``) the mask comes from the learned occluder segmenter instead
(:mod:`recon3d.nn.occluder`, shipped as ``assets/recon3d_occluder_v1.safetensors``) when its weights
are present: on bench/occlusion.py it finds pasted occluders far better (mask IoU 0.63 vs 0.37) and
flags less of unoccluded faces (9 % vs 13 %). ``cue="photometric"`` is the test above alone;
``cue="both"`` the union of the two.

Filling (the thesis's ``I_p``): the photo is re-unwrapped into UV *excluding texels seen through
the occlusion mask* (so the fill never copies the occluder), de-lit by the fitted shading, completed
by mirroring and Poisson blending into the fitted 3DMM albedo (:func:`recon3d.texture.complete_texture`
with ``keep_visible=True``), rendered at the fitted pose relit by the fitted SH, and Poisson-blended
into the photo over the (slightly dilated) occlusion mask. The Poisson boundary values come from
the photo only where it is confidently visible face; boundary pixels off the rendered face (an
occluder usually goes on past the silhouette) or with a high occlusion score (occluder leftovers)
take the rendered face instead (extended past the silhouette, shifted by the median photo-minus-
render offset of the visible face around the hole), so the fill does not drag the occluder's colour
in. Every pixel outside the returned ``occlusion_mask`` is exactly the input pixel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from .._checks import check_shapes
from ..assets import resolve
from ..conventions import opencv_to_opengl_cam
from ..errors import AssetError
from ..nn.occluder import OCCLUDER_ASSET, occluder_probability
from ..ops.geometry import vertex_normals
from ..ops.morphology import diffuse_fill, dilate, disk, erode
from ..ops.poisson import poisson_paste
from ..render import interpolate, rasterize, sh_shading
from ..texture import uv_raster
from ..texture.from_fit import texture_from_fit
from ._common import (
    check_rec,
    fit_camera,
    fit_light,
    model_of,
    numpy_dtype,
    render_textured,
    tensor_opts,
    to_device,
    to_numpy,
    verts_cam_of,
)

log = logging.getLogger(__name__)

__all__ = ["OcclusionEstimate", "DeoccludeResult", "detect_occlusion", "deocclude", "model_render"]

_SKIN_LABELS = (1, 5)  # skin, nose (recon3d.morphable.model.REGION_NAMES)
_FEATURE_LABELS = (2, 3, 4)  # eyes, brows, lips
#: noise floor (std, log units) added to the skin model's covariance: a near-perfect fit must not
#: turn 5% colour deviations into occluders
_FEATURE_FLOOR = np.array([0.04, 0.04, 0.06])
#: mixture components of the absolute chroma model (skin, occluder(s), hair/background at the rim)
_N_CHROMA = 3
#: hysteresis: occluder seeds grow through connected pixels above this fraction of the threshold
_HYST_LOW = 0.5


@dataclass(frozen=True)
class OcclusionEstimate:
    """Output of :func:`detect_occlusion` (all ``(H, W)`` torch tensors on the device of the reconstruction).

    Attributes:
        face_mask: bool, the rendered 3DMM face region ``M_m``.
        visible_face_mask: bool, ``M_f``: face pixels the model explains.
        occlusion_mask: bool, ``M_o = M_m - M_f``.
        score: float32 Mahalanobis distance (squared) to the image's skin model, 0 off the face.
    """

    face_mask: torch.Tensor
    visible_face_mask: torch.Tensor
    occlusion_mask: torch.Tensor
    score: torch.Tensor


@dataclass(frozen=True)
class DeoccludeResult:
    """Output of :func:`deocclude`.

    All fields are torch tensors on the device of the reconstruction (``rec.image.device``); the
    floating ones are float64 for a float64 ``rec.image``, else float32.

    Attributes:
        image: ``(H, W, 3)`` de-occluded photo; equal to the input outside ``occlusion_mask``.
        occlusion_mask: ``(H, W)`` bool, the pixels that were replaced.
        face_mask: ``(H, W)`` bool, rendered 3DMM face region.
        visible_face_mask: ``(H, W)`` bool, face pixels kept as they were (``face_mask & ~occlusion_mask``).
        rendered: ``(H, W, 3)`` the 3D face with the re-completed texture, relit (``I_m``).
        texture: ``(Ht, Wt, 3)`` the re-completed albedo texture (occluder texels excluded).
    """

    image: torch.Tensor
    occlusion_mask: torch.Tensor
    face_mask: torch.Tensor
    visible_face_mask: torch.Tensor
    rendered: torch.Tensor
    texture: torch.Tensor


def _fit_albedo(rec, m) -> torch.Tensor:
    """``(1, V, 3)`` fitted per-vertex 3DMM albedo (clamped to [0, 1]) of model ``m`` (on the device of rec)."""
    return m.albedo(rec.fit.params.albedo.detach().to(**tensor_opts(rec))).clamp(0, 1)


def _render_model(rec):
    """Fragments (torch, on the device of rec), and as numpy arrays: the lit 3DMM-albedo prediction,
    coverage and per-pixel region label at the fitted pose."""
    H, W = rec.image.shape[:2]
    m = model_of(rec)
    vc = verts_cam_of(rec)
    K = fit_camera(rec)[0]
    frags = rasterize(vc, m.faces, K, (H, W))
    cov = frags.tri_id[0] >= 0
    albedo = _fit_albedo(rec, m)
    n = interpolate(vertex_normals(vc, m.faces), frags, m.faces)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    shade = sh_shading(opencv_to_opengl_cam(n), fit_light(rec))
    pred = (interpolate(albedo, frags, m.faces) * shade)[0]
    labels = m.region_labels.long().clamp(0, 5)
    onehot = torch.nn.functional.one_hot(labels, 6).to(vc.dtype)[None]
    lab = interpolate(onehot, frags, m.faces)[0].argmax(-1)
    return frags, to_numpy(pred), to_numpy(cov), to_numpy(lab)


def model_render(rec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted 3DMM at the photo's pose, as numpy arrays: ``(I_m (H, W, 3)`` the fitted albedo lit by the
    fitted SH, ``M_m (H, W)`` bool coverage, ``(H, W)`` region labels)``; the learned fill's prior."""
    _, pred, cov, lab = _render_model(rec)
    return pred, cov, lab


def _features(img: np.ndarray, pred: np.ndarray) -> np.ndarray:
    eps = 0.02
    li = np.log(np.clip(img, 0, None) + eps)
    lp = np.log(np.clip(pred, 0, None) + eps)
    luma = np.array([0.299, 0.587, 0.114])
    yi = np.log(np.clip(img, 0, None) @ luma + eps)
    yp = np.log(np.clip(pred, 0, None) @ luma + eps)
    return np.stack([(li[..., 0] - li[..., 1]) - (lp[..., 0] - lp[..., 1]),
                     (li[..., 2] - li[..., 1]) - (lp[..., 2] - lp[..., 1]), yi - yp], -1)


def _robust_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian of the skin features. The start is the fit's own prediction (features 0: the model
    explains the pixel) with a generous spread, not the median, so an occluder covering most of
    the skin (a face mask) cannot capture the model; then mean/covariance of the inliers, twice."""
    spread = np.array([0.12, 0.12, 0.25])
    mu0 = np.zeros(3)
    inl = (np.abs(x - mu0) / spread < 2.5).all(1)
    if inl.sum() < max(10, 0.1 * len(x)):  # the fit is off in colour/brightness: fall back to the median
        mu0 = np.median(x, 0)
        inl = (np.abs(x - mu0) / spread < 2.5).all(1)
    mu, cov = mu0, np.diag(spread ** 2)
    for _ in range(2):
        if inl.sum() < 10:
            break
        mu = x[inl].mean(0)
        cov = np.cov(x[inl].T) + np.diag(_FEATURE_FLOOR ** 2)
        d2 = _mahal(x, mu, cov)
        inl = d2 < 9.0
    return mu, cov


def _chroma(img: np.ndarray) -> np.ndarray:
    eps = 0.02
    li = np.log(np.clip(img, 0, None) + eps)
    return np.stack([li[..., 0] - li[..., 1], li[..., 2] - li[..., 1]], -1)


def _chroma_gaussian(x: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute skin chroma of this image. A 3-component Gaussian mixture (EM, started at the mode
    of the 2-D chroma histogram and farthest points) separates skin from a large
    occluder; the component kept is the one that best explains the chroma the fitted model predicts
    (``prior``), weighted by its size. Then mean/covariance of the pixels near it."""

    b = 0.02
    lo = x.min(0)
    idx = np.floor((x - lo) / b).astype(int)
    shape = tuple(np.minimum(idx.max(0) + 1, 400))
    idx = np.minimum(idx, np.array(shape) - 1)
    hist = np.zeros(shape)
    np.add.at(hist, (idx[:, 0], idx[:, 1]), 1.0)
    hist = ndimage.gaussian_filter(hist, 1.5)
    mode = lo + (np.array(np.unravel_index(np.argmax(hist), shape)) + 0.5) * b
    mus = [mode]
    for _ in range(_N_CHROMA - 1):  # farthest-point initialisation (pulled halfway back to the data)
        d = np.min([((x - m) ** 2).sum(1) for m in mus], 0)
        mus.append(0.5 * (x[np.argmax(d)] + mode))
    mus = np.stack(mus)
    K = len(mus)
    covs = np.stack([np.eye(2) * 0.05 ** 2] * K)
    w = np.full(K, 1.0 / K)
    for _ in range(20):
        ll = np.stack([np.log(w[k] + 1e-12) - 0.5 * _mahal2(x, mus[k], covs[k]) - 0.5 * np.log(np.linalg.det(covs[k]))
                       for k in range(K)], 1)
        ll -= ll.max(1, keepdims=True)
        resp = np.exp(ll)
        resp /= resp.sum(1, keepdims=True)
        nk = resp.sum(0) + 1e-9
        w = nk / nk.sum()
        for k in range(K):
            mus[k] = (resp[:, k:k + 1] * x).sum(0) / nk[k]
            d = x - mus[k]
            covs[k] = (resp[:, k, None, None] * d[:, :, None] * d[:, None, :]).sum(0) / nk[k] + np.eye(2) * 0.02 ** 2
    prior = np.asarray(prior, float)
    score = [np.log(w[k] + 1e-12) - 0.5 * _mahal2(prior[None], mus[k], covs[k] + np.eye(2) * 0.1 ** 2)[0]
             - 0.5 * np.log(np.linalg.det(covs[k] + np.eye(2) * 0.1 ** 2)) for k in range(K)]
    k = int(np.argmax(score))
    return _chroma_iterate(x, mus[k], covs[k] + np.eye(2) * 0.03 ** 2)


def _chroma_iterate(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for _ in range(3):
        inl = _mahal2(x, mu, cov) < 6.0
        if inl.sum() < 10:
            break
        mu = x[inl].mean(0)
        cov = np.cov(x[inl].T) + np.eye(2) * 0.03 ** 2
    return mu, cov


def _mahal2(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = x - mu
    return np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)


def _mahal(x: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    ic = np.linalg.inv(cov)
    d = x - mu
    return np.einsum("...i,ij,...j->...", d, ic, d)


def _refine_boundary(img: np.ndarray, occ: np.ndarray, domain: np.ndarray, clean: np.ndarray, r: int) -> np.ndarray:
    """Snap the occluder mask to colour edges: near its border (within 4r px), a pixel belongs to
    the occluder when a Gaussian of the occluder's core colours (RGB) explains it better than a
    Gaussian of the confidently visible face colours nearby."""

    if occ.sum() < 30:
        return occ
    core = erode(occ, r)
    if core.sum() < 20:
        core = occ
    ring = dilate(occ, 4 * r) & domain
    ref = clean & ring & ~occ
    if ref.sum() < 20:
        ref = clean
    if ref.sum() < 20:
        return occ

    def loglik(x, sel):
        mu = x[sel].mean(0)
        cov = np.cov(x[sel].T) + np.eye(3) * 1e-3
        return -0.5 * _mahal(x, mu, cov) - 0.5 * np.log(np.linalg.det(cov))

    band = ring & ~core
    lo = loglik(img, core)
    ls = loglik(img, ref)
    out = core | (band & (lo > ls))
    out = ndimage.binary_opening(out, disk(1)) | core
    lbl, n = ndimage.label(out)
    if n > 1:  # keep the parts connected to the detected occluders
        keep = np.unique(lbl[occ & out])
        out = np.isin(lbl, keep[keep > 0])
    return ndimage.binary_fill_holes(out) & domain


def _photometric_mask(img: np.ndarray, d2: np.ndarray, lab: np.ndarray, inner: np.ndarray, threshold: float,
                      min_px: float, r: int) -> np.ndarray:
    """The photometric cue's occluder mask from the per-pixel score ``d2`` (steps 3-5 of the module
    docstring); blobs smaller than ``min_px`` pixels are dropped."""

    skin = inner & np.isin(lab, _SKIN_LABELS)
    feature = inner & np.isin(lab, _FEATURE_LABELS)
    occ = skin & (d2 > threshold)
    occ |= inner & ~np.isin(lab, _FEATURE_LABELS + _SKIN_LABELS) & (d2 > threshold)
    occ = ndimage.binary_opening(occ, disk(r))
    cand = feature & (d2 > 0.5 * threshold)
    occ = ndimage.binary_propagation(dilate(occ, r) & (occ | cand), mask=occ | cand)
    lbl, n = ndimage.label(occ)
    if n:
        sizes = ndimage.sum(occ, lbl, index=np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= min_px) + 1
        occ = np.isin(lbl, keep)
    if occ.any() and _HYST_LOW < 1.0:  # hysteresis: grow the seeds through connected weaker evidence
        weak = inner & (d2 > _HYST_LOW * threshold)
        weak = ndimage.binary_opening(weak, disk(r)) | occ
        occ = ndimage.binary_propagation(occ, mask=weak)
    occ = ndimage.binary_closing(occ, disk(2 * r)) & inner
    occ = ndimage.binary_fill_holes(occ) & inner
    occ = _refine_boundary(img, occ, inner, ~occ & inner & (d2 < 0.5 * threshold), r)
    return occ


def detect_occlusion(rec, *, threshold: float = 20.0, min_blob: float = 0.004, cue: str = "auto",
                     net=None) -> OcclusionEstimate:
    """Find the pixels of the rendered face region that the fitted model cannot explain.

    Args:
        rec: a :class:`recon3d.reconstruct.Reconstruction`.
        threshold: squared Mahalanobis distance (3 dof) above which a skin pixel is an occluder
            (16 ~ chi-square 99.9%; the default 20 balances mask IoU against identity on
            bench/occlusion.py, see docs/benchmarks/edit.md).
        min_blob: occluder blobs smaller than this fraction of the face area are dropped.
        cue: ``"photometric"`` (the model-explanation test above), ``"net"`` (the learned
            occluder segmenter of :mod:`recon3d.nn.occluder` alone), ``"both"`` (union of the
            two) or ``"auto"`` (:data:`DEFAULT_CUE` when the segmenter's weights are available,
            else ``"photometric"``).
        net: an :class:`~recon3d.nn.occluder.OccluderNet` (default: the shipped weights).

    Returns:
        :class:`OcclusionEstimate` (tensors on the device of ``rec``; ``score`` float32).

    Raises:
        ShapeError: ``rec`` has wrong shapes.
        ValueError: an unknown ``cue``.
        TypeError: ``rec`` is not a Reconstruction.
    """

    check_rec("detect_occlusion()", rec)
    cue = _resolve_cue(cue, net)
    opts = tensor_opts(rec)
    img = to_numpy(rec.image).astype(np.float64)
    _, pred, cov, lab = _render_model(rec)
    face = cov
    n_face = int(face.sum())
    if n_face < 30:
        z = np.zeros(face.shape, bool)
        return OcclusionEstimate(to_device(face, opts), to_device(face, opts), to_device(z, opts),
                                 torch.zeros(face.shape, device=opts["device"]))
    size = np.sqrt(n_face)
    r = max(1, int(round(size / 60)))
    inner = erode(face, max(1, int(round(0.02 * size))))
    feats = _features(img, pred)
    skin = inner & np.isin(lab, _SKIN_LABELS)
    sample = skin if skin.sum() >= 30 else inner
    mu, c = _robust_gaussian(feats[sample])
    d2_rel = _mahal(feats, mu, c)
    chroma = _chroma(img)
    mu_a, c_a = _chroma_gaussian(chroma[sample], np.median(_chroma(pred)[sample], 0))
    d2_abs = _mahal2(chroma, mu_a, c_a) * (16.0 / 13.8)  # 2 dof: put 99.9% on the same scale as 3 dof
    d2 = np.where(face, np.maximum(d2_rel, d2_abs), 0.0)
    occ = np.zeros(face.shape, bool)
    if cue in ("photometric", "both"):
        occ = _photometric_mask(img, d2, lab, inner, threshold, min_blob * n_face, r)
    if cue in ("net", "both"):

        prob = occluder_probability(img.astype(np.float32), to_numpy(rec.fit.lmk_px[0]), net=net)
        occ_net = inner & (prob > 0.5)
        occ_net = ndimage.binary_opening(occ_net, disk(r))
        occ_net = ndimage.binary_fill_holes(ndimage.binary_closing(occ_net, disk(2 * r))) & inner
        occ = occ_net if cue == "net" else (occ | occ_net)
        d2 = np.where(face, np.maximum(d2, 2.0 * threshold * prob), 0.0)
    visible = face & ~occ
    return OcclusionEstimate(face_mask=to_device(face, opts), visible_face_mask=to_device(visible, opts),
                             occlusion_mask=to_device(occ, opts), score=to_device(d2.astype(np.float32), opts,
                                                                                  keep_dtype=True))


#: the cue ``detect_occlusion(cue="auto")`` uses when the occluder network's weights are present
DEFAULT_CUE = "net"
_CUES = ("auto", "photometric", "net", "both")


def _resolve_cue(cue: str, net) -> str:
    if cue not in _CUES:
        raise ValueError(f"detect_occlusion(): cue must be one of {_CUES}, got {cue!r}")
    if cue != "auto":
        return cue
    if net is not None:
        return DEFAULT_CUE

    try:
        resolve(OCCLUDER_ASSET)
    except AssetError:
        return "photometric"
    return DEFAULT_CUE


def occluder_free_texture(rec, occ: np.ndarray, texture_size: int, *, method: str = "poisson",
                          uv_generator=None) -> torch.Tensor:
    """Unwrap the photo again without the texels seen through ``occ`` (``(H, W)`` bool numpy), de-light
    and complete it (``method``, ``uv_generator``: see :func:`recon3d.texture.from_fit.texture_from_fit`):
    ``(Ht, Wt, 3)`` on the device of ``rec`` (also the texture of :mod:`recon3d.edit.rotate`)."""
    o = tensor_opts(rec)
    m = model_of(rec)
    uvr = uv_raster(m, resolution=texture_size)
    tex = texture_from_fit(rec.image.to(**o)[None], verts_cam_of(rec), m.faces, fit_camera(rec)[0], uvr,
                           albedo_v=_fit_albedo(rec, m), light=fit_light(rec),
                           exclude=to_device(dilate(occ, 2), o), delight=True, max_value=1.5, mirror=True, clamp=False, method=method,
                           uv_generator=uv_generator)
    return tex.texture[0].clamp(0, 1.5)


def _untrusted_boundary(omega: np.ndarray, face: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """Pixels just outside ``omega`` whose colour must not be propagated into the fill: near the face
    but not confidently visible face (outside the rendered face, where an occluder usually goes on
    past the silhouette, or with an occlusion score above half the threshold: occluder leftovers)."""
    bnd = dilate(omega, 1) & ~omega
    size = np.sqrt(max(int(face.sum()), 1))
    near_face = dilate(face, max(2, int(round(0.05 * size))))
    trusted = erode(face, 2)
    if score is not None:
        trusted = trusted & (score < 0.5)
    return bnd & near_face & ~trusted


def _render_boundary_values(img: np.ndarray, rendered: np.ndarray, cov: np.ndarray, face: np.ndarray,
                            omega: np.ndarray) -> np.ndarray:
    """The rendered face extended past its silhouette (nearest covered pixel), shifted by the median
    photo-minus-render offset on the visible face around ``omega``: boundary values for the fill
    where the photo's own pixels are not to be trusted."""

    covered = cov > 0.99
    if not covered.any():
        return img
    idx = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    ext = rendered[idx[0], idx[1]]
    size = np.sqrt(max(int(face.sum()), 1))
    ring = dilate(omega, max(3, int(round(0.1 * size)))) & erode(face, 2) & ~dilate(omega, 1)
    off = np.median(img[ring] - rendered[ring], 0) if ring.sum() >= 20 else np.zeros(3)
    return np.clip(ext + off, 0, 1).astype(img.dtype)


#: the fill ``deocclude(fill="auto")`` uses when the inpainter's weights are present: the classical fill,
#: because the shipped inpainter does not beat it on bench/occlusion.py yet (docs/benchmarks/edit.md)
DEFAULT_FILL = "classical"
_FILLS = ("auto", "net", "classical")


def _resolve_fill(fill: str, inpainter) -> str:
    if fill not in _FILLS:
        raise ValueError(f"deocclude(): fill must be one of {_FILLS}, got {fill!r}")
    if fill != "auto":
        return fill
    if inpainter is not None:
        return "net"
    if DEFAULT_FILL == "classical":
        return "classical"
    from ..nn.inpaint import INPAINTER_ASSET

    try:
        resolve(INPAINTER_ASSET)
    except AssetError:
        return "classical"
    return DEFAULT_FILL


def _learned(rec, img: np.ndarray, omega: np.ndarray, classical: np.ndarray, inpainter, model=None) -> np.ndarray:
    """The learned fill inside ``omega`` where the aligned frame covers it, ``classical`` elsewhere;
    ``model``: the ``(pred, coverage)`` of :func:`model_render` when already rendered."""
    from ..nn.inpaint import load_inpainter
    from ._learned_fill import net_fill

    net = inpainter if inpainter is not None else load_inpainter(device=rec.image.device)
    pred, cov = model if model is not None else model_render(rec)[:2]
    filled, covered = net_fill(net, img, omega, pred * cov[..., None], cov, to_numpy(rec.fit.lmk_px[0]))
    return np.where(covered[..., None], filled, classical).astype(img.dtype)


def deocclude(rec, *, mask=None, texture_size: int | None = None, dilate_px: int = 2,
              threshold: float = 20.0, cue: str = "auto", fill: str = "auto", inpainter=None) -> DeoccludeResult:
    """Remove occluders (glasses, hands, hair, masks...) from the face of a reconstruction.

    Args:
        rec: a :class:`recon3d.reconstruct.Reconstruction`.
        mask: optional user occlusion mask ``(H, W)`` (bool, or numbers > 0.5 true; numpy or torch).
            It is used exactly as given (no detection, no dilation); outside the rendered face the
            fill is a smooth membrane interpolation.
        texture_size: side of the re-completed UV texture (default: that of ``rec.texture``, at
            most 512).
        dilate_px: the detected mask is grown by this many pixels (inside the face) before filling,
            to cover the occluders' soft edges.
        threshold, cue: see :func:`detect_occlusion`.
        fill: ``"classical"`` (the training-free fill of the module doc), ``"net"`` (the learned
            inpainter of :mod:`recon3d.nn.inpaint` on the template-aligned face, fed the photo, the
            mask and the fitted 3DMM render; hole pixels outside its aligned frame keep the classical
            fill) or ``"auto"`` (:data:`DEFAULT_FILL` when the inpainter's weights are present, else
            ``"classical"``).
        inpainter: an :class:`~recon3d.nn.inpaint.Inpainter` (default: the shipped weights).

    Returns:
        :class:`DeoccludeResult`; its image equals the input wherever ``occlusion_mask`` is False.

    Raises:
        ShapeError: ``mask`` is not ``(H, W)`` (or ``(H, W, 1|3|4)``) like ``rec.image``, or ``rec``
            has wrong shapes.
        ValueError: an unknown ``cue`` or ``fill``.
        TypeError: ``rec`` is not a Reconstruction.
    """
    check_rec("deocclude()", rec)
    fill = _resolve_fill(fill, inpainter)
    opts = tensor_opts(rec)
    fdt = numpy_dtype(opts)
    img = to_numpy(rec.image).astype(fdt)
    H, W = img.shape[:2]
    if mask is not None:
        um = to_numpy(mask)
        spec = "H W C" if um.ndim == 3 and um.shape[-1] in (1, 3, 4) else "H W"
        check_shapes("deocclude()", **{"rec.image": (img, "H W 3"), "mask": (um, spec)})
        if um.ndim == 3:
            um = um[..., 0]
        occ = um > 0.5 if um.dtype != bool else um.copy()
        _, pred_m, face, _ = _render_model(rec)
        model = (pred_m, face)
        omega = occ
        score = None
    else:
        model = None
        est = detect_occlusion(rec, threshold=threshold, cue=cue)
        face = to_numpy(est.face_mask)
        occ = to_numpy(est.occlusion_mask)
        score = to_numpy(est.score) / threshold
        omega = dilate(occ, dilate_px) & erode(face, 1) if occ.any() else occ
    ts = texture_size or min(int(rec.texture.shape[0]), 512)
    tex = occluder_free_texture(rec, omega, ts)
    out = render_textured(rec, verts_cam_of(rec), tex, (H, W), light=fit_light(rec))
    rendered = to_numpy(out.image[0].clamp(0, 1)).astype(fdt)
    cov = to_numpy(out.mask[0, ..., 0].clamp(0, 1)).astype(fdt)[..., None]
    if omega.any():
        outside = omega & (cov[..., 0] < 0.999)
        base = diffuse_fill(img, outside) if outside.any() else img
        src = cov * rendered + (1 - cov) * base
        untrusted = _untrusted_boundary(omega, face, score)
        target = img
        if untrusted.any():
            target = img.copy()
            target[untrusted] = _render_boundary_values(img, rendered, cov[..., 0], face, omega)[untrusted]
        result = poisson_paste(target, src, omega)
        result = np.where(omega[..., None], result, img)
        if fill == "net":  # the same trusted boundary: occluder leftovers around the hole are not copied in
            result = _learned(rec, target, omega, result, inpainter, model)
    else:
        result = img.copy()
    return DeoccludeResult(image=to_device(result, opts), occlusion_mask=to_device(omega, opts),
                           face_mask=to_device(face, opts), visible_face_mask=to_device(face & ~omega, opts),
                           rendered=to_device(rendered, opts), texture=tex)
