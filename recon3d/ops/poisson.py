"""Gradient-domain (Poisson) image blending on a masked grid, fast enough for 1024² UV maps.

Pérez et al., "Poisson image editing" (2003): inside the unknown region Omega find ``f`` with
``laplacian(f) = div(v)`` and ``f = target`` on the Dirichlet boundary (pixels of the domain
next to Omega). ``v`` is the guidance field: the gradient of ``source`` (``guidance="source"``)
or, per edge, whichever of the source / target gradients is larger (``guidance="mixed"``).

We solve for the correction ``h = f - source``. With source guidance ``h`` is harmonic inside
Omega and equals ``target - source`` on the boundary, so it is smooth away from the boundary and
a geometric multigrid converges in a few iterations. Pixels outside the optional ``domain``
(e.g. outside a UV layout) are not neighbours at all (zero-flux / Neumann edges), so garbage
there never leaks in.

Solvers: a sparse direct solve (scipy ``splu``) for small problems (``<= direct_max`` unknowns),
otherwise conjugate gradients preconditioned by one symmetric multigrid V-cycle (red-black
Gauss-Seidel smoothing, bilinear prolongation, its transpose as restriction, rediscretised
coarse operators, a direct solve on the coarsest grid), all on dense numpy grids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from ..errors import ShapeError

__all__ = ["poisson_blend", "poisson_paste"]

log = logging.getLogger(__name__)

_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)


def poisson_blend(
    target,
    source,
    mask,
    *,
    guidance: str = "source",
    domain=None,
    tol: float = 1e-3,
    max_iter: int = 60,
    direct_max: int = 20000,
    workers: int = 2,
):
    """Blend ``source`` into ``target`` over ``mask`` by solving a Poisson equation.

    The result equals ``target`` outside the unknown region ``Omega = mask & domain`` and, inside,
    has the gradients of the guidance field while meeting ``target`` continuously at the border of
    Omega (Dirichlet boundary). Edges to pixels outside ``domain`` are dropped (Neumann boundary).
    A connected part of Omega that touches no Dirichlet pixel has no defined offset and is left
    equal to ``source``.

    Args:
        target: ``(H, W, C)`` or ``(H, W)`` float numpy array or torch tensor; boundary values and
            everything outside Omega.
        source: same shape as ``target``; its gradients guide the inside of Omega.
        mask: ``(H, W)`` bool; the unknown pixels.
        guidance: ``"source"`` (classic seamless cloning) or ``"mixed"`` (per edge the larger of
            the source and target gradients).
        domain: optional ``(H, W)`` bool; pixels that exist (default: all).
        tol: relative residual (per channel) at which conjugate gradients stops. The error this
            leaves depends on the content: at the default, against the exact (direct) solution,
            0.43 8-bit levels at most on the smooth-plus-noise 400² field of
            ``tests/ops/test_poisson_accuracy.py`` (0.26 at 1024²), but 2-4 levels have been seen
            on 400²-1024² textures. Lower it (or raise ``direct_max``) when exactness matters.
        max_iter: conjugate-gradient iteration limit.
        direct_max: problems with at most this many unknowns are solved directly (exactly).
        workers: threads for the iterative solver (one channel per thread; 1 = no threads).

    Returns:
        The blended image, same type, shape and dtype as ``target``.

    Raises:
        ShapeError: mismatched shapes, a non-boolean mask or an unknown ``guidance``.

    >>> t = np.zeros((5, 5, 1)); s = np.full((5, 5, 1), 3.0); m = np.zeros((5, 5), bool)
    >>> m[1:4, 1:4] = True
    >>> bool(np.abs(poisson_blend(t, s, m)).max() < 1e-9)  # a constant offset vanishes
    True
    """
    is_torch = isinstance(target, torch.Tensor)
    t_np = _to_numpy(target, "target")
    s_np = _to_numpy(source, "source")
    m_np = _to_numpy(mask, "mask")
    squeeze = t_np.ndim == 2
    if squeeze:
        t_np, s_np = t_np[..., None], (s_np[..., None] if s_np.ndim == 2 else s_np)
    if t_np.ndim != 3 or s_np.shape != t_np.shape:
        raise ShapeError(
            f"poisson_blend(): target and source must both be (H, W, C) or (H, W), got {tuple(t_np.shape)} "
            f"and {tuple(s_np.shape)}"
        )
    H, W, C = t_np.shape
    if m_np.shape != (H, W) or m_np.dtype != bool:
        raise ShapeError(f"poisson_blend(): mask must be ({H}, {W}) bool, got {m_np.shape} {m_np.dtype}")
    if domain is None:
        d_np = np.ones((H, W), bool)
    else:
        d_np = _to_numpy(domain, "domain")
        if d_np.shape != (H, W) or d_np.dtype != bool:
            raise ShapeError(f"poisson_blend(): domain must be ({H}, {W}) bool, got {d_np.shape} {d_np.dtype}")
    if guidance not in ("source", "mixed"):
        raise ShapeError(f"poisson_blend(): guidance must be 'source' or 'mixed', got {guidance!r}")

    out = t_np.astype(np.float64 if t_np.dtype == np.float64 else np.float32, copy=True)
    omega = _solvable_region(m_np & d_np, d_np)
    # Components that cannot be solved (no Dirichlet contact) keep the source.
    free = m_np & d_np & ~omega
    out[free] = s_np[free]
    if omega.any():
        rows, cols = np.nonzero(omega)
        r0, r1 = max(rows.min() - 1, 0), min(rows.max() + 2, H)
        c0, c1 = max(cols.min() - 1, 0), min(cols.max() + 2, W)
        crop = (slice(r0, r1), slice(c0, c1))
        om, dm = omega[crop], d_np[crop]
        tc = np.asarray(t_np[crop], np.float64)
        sc = np.asarray(s_np[crop], np.float64)
        b = _rhs(tc, sc, om, dm, guidance)  # (C, h, w)
        n_unknown = int(om.sum())
        if n_unknown <= direct_max:
            h = _solve_direct(om, dm, b)
        else:
            h = _solve_mg(om, dm, b, tol=tol, max_iter=max_iter, workers=workers)
        f = sc + np.moveaxis(h, 0, -1)
        out[crop][om] = f[om]
    out = out.astype(t_np.dtype, copy=False)
    if squeeze:
        out = out[..., 0]
    if is_torch:
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=target.device, dtype=target.dtype)
    return out


# -- helpers -----------------------------------------------------------------------------------


def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise ShapeError(f"poisson_blend(): {name} must be a numpy array or torch tensor, got {type(x).__name__}")


def _shift(a: np.ndarray, dr: int, dc: int, fill=0) -> np.ndarray:
    """``out[i, j] = a[i + dr, j + dc]`` (``fill`` outside), for the first two axes."""
    out = np.full_like(a, fill)
    H, W = a.shape[:2]
    src_r = slice(max(dr, 0), H + min(dr, 0))
    dst_r = slice(max(-dr, 0), H + min(-dr, 0))
    src_c = slice(max(dc, 0), W + min(dc, 0))
    dst_c = slice(max(-dc, 0), W + min(-dc, 0))
    out[dst_r, dst_c] = a[src_r, src_c]
    return out


_NBRS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _solvable_region(omega: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Omega minus the connected parts (4-connectivity) that touch no Dirichlet pixel."""
    if not omega.any():
        return omega
    dirichlet = domain & ~omega
    touch = ndi.binary_dilation(dirichlet, structure=_CROSS) & omega
    lab, n = ndi.label(omega, structure=_CROSS)
    good = np.zeros(n + 1, bool)
    good[np.unique(lab[touch])] = True
    good[0] = False
    return good[lab]


def _rhs(t: np.ndarray, s: np.ndarray, om: np.ndarray, dm: np.ndarray, guidance: str) -> np.ndarray:
    """Right-hand side ``(C, h, w)`` of the system for ``h = f - source`` (zero outside Omega)."""
    b = np.zeros(t.shape, np.float64)
    diff = t - s
    for dr, dc in _NBRS:
        nd = _shift(dm, dr, dc, False)
        no = _shift(om, dr, dc, False)
        bnd = (nd & ~no)[..., None]
        b += np.where(bnd, _shift(diff, dr, dc), 0.0)
        if guidance == "mixed":
            gs = s - _shift(s, dr, dc)
            gt = t - _shift(t, dr, dc)
            use_t = (np.abs(gt) > np.abs(gs)) & nd[..., None]
            b += np.where(use_t, gt - gs, 0.0)
    b[~om] = 0.0
    return np.moveaxis(b, -1, 0)


def _n_domain_nbrs(dm: np.ndarray) -> np.ndarray:
    n = np.zeros(dm.shape, np.float64)
    for dr, dc in _NBRS:
        n += _shift(dm, dr, dc, False)
    return n


def _assemble(om: np.ndarray, dm: np.ndarray) -> sp.csc_matrix:
    """Sparse SPD matrix of the masked 5-point operator on the unknowns of ``om`` (row-major order)."""
    h, w = om.shape
    idx = -np.ones((h, w), np.int64)
    n = int(om.sum())
    idx[om] = np.arange(n)
    diag = _n_domain_nbrs(dm)[om]
    rows, cols = [np.arange(n)], [np.arange(n)]
    vals = [diag]
    for dr, dc in _NBRS:
        q = _shift(idx, dr, dc, -1)[om]
        ok = q >= 0
        rows.append(np.arange(n)[ok])
        cols.append(q[ok])
        vals.append(-np.ones(int(ok.sum())))
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _solve_direct(om: np.ndarray, dm: np.ndarray, b: np.ndarray) -> np.ndarray:
    A = _assemble(om, dm)
    rhs = b[:, om].T  # (n, C)
    x = spl.splu(A).solve(np.ascontiguousarray(rhs))
    h = np.zeros_like(b)
    h[:, om] = x.T
    return h


# -- multigrid-preconditioned CG on dense numpy grids -----------------------------------------
# numpy (single-threaded, no thread pool) rather than torch: on a busy 2-core machine the many
# small grid operations of a V-cycle are several times slower with a contended OpenMP pool.


_FINE_SWEEPS = 2
_COARSE_SWEEPS = 2


@dataclass(frozen=True)
class _Level:
    U: np.ndarray  # (h,w) float32 0/1 unknowns
    n: np.ndarray  # (h,w) number of domain neighbours on the unknowns, else 0
    red_inv_n: np.ndarray  # (h,w) 1/n on the unknowns with (i+j) even, else 0
    red_keep: np.ndarray  # 1 - (unknown and even)
    black_inv_n: np.ndarray
    black_keep: np.ndarray
    lu: object = None  # coarsest level: scipy splu of the assembled matrix
    om: np.ndarray | None = None  # coarsest level: bool unknown mask


def _make_level(om: np.ndarray, dm: np.ndarray, coarsest: bool) -> _Level:
    n = _n_domain_nbrs(dm) * om
    inv_n = np.where(n > 0, 1.0 / np.maximum(n, 1.0), 0.0)
    ii, jj = np.indices(om.shape)
    even = ((ii + jj) % 2 == 0) & om
    odd = ((ii + jj) % 2 == 1) & om
    f = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    lu = spl.splu(_assemble(om, dm)) if coarsest else None
    return _Level(U=f(om), n=f(n), red_inv_n=f(inv_n * even), red_keep=f(~even), black_inv_n=f(inv_n * odd),
                  black_keep=f(~odd), lu=lu, om=om if coarsest else None)


def _coarsen(om: np.ndarray, dm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coarse unknowns: 2x2 blocks with an unknown and no Dirichlet child (keeps the boundary)."""
    h, w = om.shape
    hp, wp = h + h % 2, w + w % 2
    om_p = np.zeros((hp, wp), bool)
    dm_p = np.zeros((hp, wp), bool)
    om_p[:h, :w], dm_p[:h, :w] = om, dm
    dirichlet = dm_p & ~om_p
    blk = lambda a: a.reshape(hp // 2, 2, wp // 2, 2)  # noqa: E731
    dm_c = blk(dm_p).any(axis=(1, 3))
    om_c = blk(om_p).any(axis=(1, 3)) & ~blk(dirichlet).any(axis=(1, 3))
    om_c &= _n_domain_nbrs(dm_c) > 0
    return _solvable_region(om_c, dm_c), dm_c


def _build_hierarchy(om: np.ndarray, dm: np.ndarray, coarse_max: int = 3000) -> list[_Level]:
    levels: list[_Level] = []
    while True:
        coarsest = int(om.sum()) <= coarse_max or min(om.shape) <= 8
        levels.append(_make_level(om, dm, coarsest))
        if coarsest:
            return levels
        om, dm = _coarsen(om, dm)


def _neighbour_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the 4 neighbours of every pixel of ``(C, h, w)`` (0 beyond the grid)."""
    out = np.empty_like(x)
    np.add(x[:, :-2, :], x[:, 2:, :], out=out[:, 1:-1, :])
    out[:, 0, :] = x[:, 1, :]
    out[:, -1, :] = x[:, -2, :]
    out[:, :, 1:] += x[:, :, :-1]
    out[:, :, :-1] += x[:, :, 1:]
    return out


def _apply(lv: _Level, x: np.ndarray) -> np.ndarray:
    y = lv.n * x
    y -= _neighbour_sum(x)
    y *= lv.U
    return y


def _gs_half(x: np.ndarray, b: np.ndarray, inv_n: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """One colour of red-black Gauss-Seidel (exact: a colour only reads the other colour)."""
    upd = _neighbour_sum(x)
    upd += b
    upd *= inv_n
    x *= keep
    x += upd
    return x


def _prolong_last(c: np.ndarray) -> np.ndarray:
    """Linear interpolation ``(..., n) -> (..., 2n)``; fine 2i gets .75 c[i] + .25 c[i-1]."""
    out = np.empty(c.shape[:-1] + (2 * c.shape[-1],), c.dtype)
    even, odd = out[..., 0::2], out[..., 1::2]
    np.multiply(c, 0.75, out=even)
    even[..., 1:] += 0.25 * c[..., :-1]
    np.multiply(c, 0.75, out=odd)
    odd[..., :-1] += 0.25 * c[..., 1:]
    return out


def _restrict_last(r: np.ndarray) -> np.ndarray:
    """Exact transpose of :func:`_prolong_last`: ``(..., 2n) -> (..., n)``."""
    re, ro = r[..., 0::2], r[..., 1::2]
    c = re + ro
    c *= 0.75
    c[..., 1:] += 0.25 * ro[..., :-1]
    c[..., :-1] += 0.25 * re[..., 1:]
    return c


def _prolong_rows(c: np.ndarray) -> np.ndarray:
    """:func:`_prolong_last` along axis -2 (rows), without transposes."""
    out = np.empty(c.shape[:-2] + (2 * c.shape[-2], c.shape[-1]), c.dtype)
    even, odd = out[..., 0::2, :], out[..., 1::2, :]
    np.multiply(c, 0.75, out=even)
    even[..., 1:, :] += 0.25 * c[..., :-1, :]
    np.multiply(c, 0.75, out=odd)
    odd[..., :-1, :] += 0.25 * c[..., 1:, :]
    return out


def _restrict_rows(r: np.ndarray) -> np.ndarray:
    """:func:`_restrict_last` along axis -2 (rows)."""
    re, ro = r[..., 0::2, :], r[..., 1::2, :]
    c = re + ro
    c *= 0.75
    c[..., 1:, :] += 0.25 * ro[..., :-1, :]
    c[..., :-1, :] += 0.25 * re[..., 1:, :]
    return c


def _prolong(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = _prolong_rows(x[..., : (shape[0] + 1) // 2 + 1, :])
    up = _prolong_last(up[..., : shape[0], :])
    return up[..., : shape[0], : shape[1]]


def _restrict(r: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = r.shape[-2:]
    if h % 2 or w % 2:
        r = np.pad(r, ((0, 0), (0, h % 2), (0, w % 2)))
    down = _restrict_last(_restrict_rows(r))
    return np.ascontiguousarray(down[..., : shape[0], : shape[1]])


def _vcycle(levels: list[_Level], k: int, b: np.ndarray) -> np.ndarray:
    lv = levels[k]
    if lv.lu is not None:
        x = np.zeros_like(b)
        sol = lv.lu.solve(np.ascontiguousarray(b[:, lv.om].T, dtype=np.float64))
        x[:, lv.om] = sol.T
        return x
    sweeps = _FINE_SWEEPS if k == 0 else _COARSE_SWEEPS  # coarse sweeps are cheap and cut the iterations
    x = b * lv.red_inv_n  # first red half-sweep from x = 0
    x = _gs_half(x, b, lv.black_inv_n, lv.black_keep)
    for _ in range(sweeps - 1):
        x = _gs_half(x, b, lv.red_inv_n, lv.red_keep)
        x = _gs_half(x, b, lv.black_inv_n, lv.black_keep)
    r = b - _apply(lv, x)
    nxt = levels[k + 1]
    rc = _restrict(r, nxt.U.shape)
    rc *= nxt.U
    ec = _vcycle(levels, k + 1, rc)
    e = _prolong(ec, lv.U.shape)
    e *= lv.U
    x += e
    for _ in range(sweeps):  # the reverse order keeps the preconditioner symmetric
        x = _gs_half(x, b, lv.black_inv_n, lv.black_keep)
        x = _gs_half(x, b, lv.red_inv_n, lv.red_keep)
    return x


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("chw,chw->c", a, b, dtype=np.float64)


def _solve_mg(om: np.ndarray, dm: np.ndarray, b_np: np.ndarray, *, tol: float, max_iter: int,
              workers: int = 1) -> np.ndarray:
    """PCG with a symmetric V-cycle preconditioner. ``b_np``: (C, h, w). Returns (C, h, w) float64.

    With ``workers > 1`` the channels (independent systems sharing the hierarchy) are solved in
    parallel threads; numpy releases the GIL inside its array loops.
    """
    levels = _build_hierarchy(om, dm)
    b = np.ascontiguousarray(b_np, dtype=np.float32)
    C = b.shape[0]
    if workers > 1 and C > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(workers, C)) as ex:
            parts = list(ex.map(lambda c: _pcg(levels, b[c : c + 1], tol, max_iter), range(C)))
        return np.concatenate(parts, axis=0)
    return _pcg(levels, b, tol, max_iter)


def _pcg(levels: list[_Level], b: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    om = levels[0].U
    x = np.zeros_like(b)
    r = b.copy()
    bnorm = np.sqrt(np.maximum(_dot(b, b), 1e-30))
    z = _vcycle(levels, 0, r)
    p = z.copy()
    rz = _dot(r, z)
    it, rel = 0, np.ones(1)
    while it < max_iter:
        it += 1
        Ap = _apply(levels[0], p)
        alpha = (rz / np.maximum(_dot(p, Ap), 1e-30)).astype(np.float32)[:, None, None]
        x += alpha * p
        r -= alpha * Ap
        rel = np.sqrt(_dot(r, r)) / bnorm
        if float(rel.max()) < tol:
            break
        z = _vcycle(levels, 0, r)
        rz_new = _dot(r, z)
        beta = (rz_new / np.maximum(rz, 1e-30)).astype(np.float32)[:, None, None]
        rz = rz_new
        p *= beta
        p += z
    log.debug("poisson_blend: %d unknowns, %d channels, %d levels, %d PCG iterations, rel. residual %.2e",
              int(om.sum()), b.shape[0], len(levels), it, float(rel.max()))
    return x.astype(np.float64)


def poisson_paste(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seamless cloning of ``source`` into ``target`` over ``mask`` (``(H, W, C)`` images in [0, 1],
    ``(H, W)`` bool mask); every pixel outside ``mask`` is exactly ``target`` (enforced, not just
    solved for), the result is clipped to [0, 1] in ``target``'s dtype.

    >>> t = np.zeros((4, 4, 1), np.float32)
    >>> bool((poisson_paste(t, t + 0.5, np.zeros((4, 4), bool)) == t).all())
    True
    """
    if not mask.any():
        return target.copy()
    out = np.asarray(poisson_blend(target.astype(np.float64), source.astype(np.float64), mask))
    out = np.clip(out, 0.0, 1.0).astype(target.dtype)
    return np.where(mask[..., None], out, target)
