"""Pose initialisation, landmark fit, dynamic contour, priors, losses (recon3d.fitting)."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import recon3d.fitting.losses as losses_mod
import recon3d.fitting.params as params_mod
from recon3d.camera import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_pose_angles,
    pose_angles_to_matrix,
)
from recon3d.errors import ShapeError
from recon3d.fitting import (
    FaceParams,
    FitConfig,
    FitResult,
    default_intrinsics,
    fit_landmarks,
    gaussian_prior,
    init_pose_from_landmarks,
    landmark_loss,
    model_landmarks_px,
    select_contour,
)
from recon3d.morphable.toy import make_toy_model

H = W = 256


@pytest.fixture(scope="module")
def model():
    return make_toy_model()


@pytest.fixture(scope="module")
def K():
    return default_intrinsics((H, W))


def make_params(model, ypr_deg, *, coeff=1.0, seed=0, trans=(0.01, -0.005, 0.6), batch=1):
    g = torch.Generator().manual_seed(seed)
    z = FaceParams.zeros(model, batch)
    R = pose_angles_to_matrix(torch.deg2rad(torch.tensor(ypr_deg, dtype=torch.float32)).expand(batch, 3))
    return FaceParams(coeff * torch.randn(batch, model.n_shape, generator=g), coeff * torch.randn(batch, model.n_expr, generator=g),
                      z.albedo, matrix_to_axis_angle(R), torch.tensor([trans]).expand(batch, 3).clone(), z.light)


def pose_err_deg(rot, ypr_deg):
    got = torch.rad2deg(matrix_to_pose_angles(axis_angle_to_matrix(rot)))
    return (got - torch.tensor(ypr_deg)).abs().max().item()


# -- conventions of the default camera and the zero params ---------------------------------------
def test_default_intrinsics_fov_and_zero_params_frontal(model, K):
    f = K[0, 0, 0].item()
    assert math.isclose(2 * math.degrees(math.atan(0.5 * W / f)), params_mod.DEFAULT_FOV_DEG, rel_tol=1e-5)
    p = FaceParams.zeros(model, 2)
    lmk = model_landmarks_px(model, p, K)
    assert lmk.shape == (2, 68, 2)
    # frontal: subject's right eye (36) on the image left, brows above the chin
    assert lmk[0, 36, 0] < W / 2 < lmk[0, 45, 0]
    assert lmk[0, 19, 1] < lmk[0, 8, 1]


# -- init -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("yaw", [-80, -60, -30, 0, 30, 60, 80])
def test_init_pose_recovers_pose_across_yaw(model, K, yaw):
    ypr = [float(yaw), 12.0, -8.0]
    p = make_params(model, ypr, coeff=0.0)
    lmk = model_landmarks_px(model, p, K)
    rot, t = init_pose_from_landmarks(lmk, model, K)
    assert pose_err_deg(rot, ypr) < 1.0
    assert (t - p.trans).abs().max() < 0.01
    # the closed form alone (no refinement) is already within a few degrees up to 60 deg
    rot0, t0 = init_pose_from_landmarks(lmk, model, K, refine_iters=0)
    if abs(yaw) <= 60:
        assert pose_err_deg(rot0, ypr) < 7.0
    assert (t0[:, 2] - p.trans[:, 2]).abs().max() < 0.05


def test_init_pose_with_landmark_noise(model, K):
    ypr = [25.0, -5.0, 3.0]
    p = make_params(model, ypr, coeff=0.0)
    lmk = model_landmarks_px(model, p, K) + 0.5 * torch.randn(1, 68, 2, generator=torch.Generator().manual_seed(3))
    rot, _ = init_pose_from_landmarks(lmk, model, K)
    assert pose_err_deg(rot, ypr) < 3.0


# -- landmark fit ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ypr", [[-45.0, 10.0, 5.0], [0.0, -10.0, 0.0], [15.0, 10.0, 5.0], [60.0, 5.0, -5.0]])
def test_fit_landmarks_noise_free(model, K, ypr):
    p = make_params(model, ypr, coeff=0.7, seed=1)
    lmk = model_landmarks_px(model, p, K)
    res = fit_landmarks(lmk, model=model, K=K, config=FitConfig())
    assert isinstance(res, FitResult)
    err = (res.lmk_px - lmk).norm(dim=-1).mean().item()
    assert err < 1.0
    assert (res.pose_deg - torch.tensor([ypr])).abs().max().item() < 2.0
    hist = res.losses["landmarks/lmk"]
    assert hist[-1] < 0.05 * hist[0]
    assert res.verts_model.shape == (1, model.n_verts, 3) and res.verts_cam.shape == (1, model.n_verts, 3)
    assert torch.allclose(res.camera.project(res.verts_model), res.camera.K.new_tensor(0) + _proj(res), atol=1e-3)
    assert "landmarks" in res.timings and res.n_iters > 0


def _proj(res):
    from recon3d.camera import project_points

    return project_points(res.verts_cam, res.camera.K)


def test_fit_landmarks_default_init_is_frontal_mean(model, K):
    # with zero coefficients and no priors the LM reaches (numerically) zero error
    p = make_params(model, [10.0, 0.0, 0.0], coeff=0.0)
    lmk = model_landmarks_px(model, p, K)
    res = fit_landmarks(lmk, model=model, K=K, config=FitConfig(w_reg_shape=1e-6, w_reg_expr=1e-6))
    assert (res.lmk_px - lmk).norm(dim=-1).max() < 0.05
    assert res.converged


def test_dynamic_contour_changes_with_yaw(model, K):
    sel = {y: select_contour(model, make_params(model, [y, 0.0, 0.0], coeff=0.0), K)[0] for y in (-45.0, 0.0, 45.0)}
    frontal = sel[0.0]
    # frontal: the outermost candidate (the frontal outline) everywhere
    assert torch.equal(frontal, model.contour_verts[:, 0])
    # positive yaw turns the subject's left side (landmarks 9..16) away: its contour moves inwards
    assert not torch.equal(sel[45.0][9:], frontal[9:])
    assert torch.equal(sel[45.0][:8], frontal[:8])
    assert not torch.equal(sel[-45.0][:8], frontal[:8])
    assert torch.equal(sel[-45.0][9:], frontal[9:])
    x45, x0 = model.mean[sel[45.0][9:], 0].abs(), model.mean[frontal[9:], 0].abs()
    assert (x45 <= x0).all() and (x45 < x0).any()  # inwards, towards the nose


def test_fit_uses_dynamic_contour(model, K):
    p = make_params(model, [45.0, 0.0, 0.0], coeff=0.0)
    lmk = model_landmarks_px(model, p, K)
    res = fit_landmarks(lmk, model=model, K=K, config=FitConfig())
    assert torch.equal(res.contour_idx[0], select_contour(model, p, K)[0])
    static = model_landmarks_px(model, p, K, dynamic_contour=False)
    assert (static[0, 9:17] - lmk[0, 9:17]).norm(dim=-1).max() > 2.0  # the contour matters here


def test_priors_keep_coefficients_small_with_noisy_landmarks(model, K):
    p = make_params(model, [20.0, 5.0, 0.0], coeff=0.0)
    gen = torch.Generator().manual_seed(5)
    lmk = model_landmarks_px(model, p, K) + 3.0 * torch.randn(1, 68, 2, generator=gen)
    weak = fit_landmarks(lmk, model=model, K=K, config=FitConfig(w_reg_shape=1e-5, w_reg_expr=1e-5))
    strong = fit_landmarks(lmk, model=model, K=K, config=FitConfig())
    n_weak = torch.cat([weak.params.shape, weak.params.expr], 1).norm()
    n_strong = torch.cat([strong.params.shape, strong.params.expr], 1).norm()
    assert n_strong < 0.7 * n_weak
    assert n_strong < 3.0
    assert (strong.pose_deg - torch.tensor([[20.0, 5.0, 0.0]])).abs().max() < 5.0


def test_huber_limits_an_outlier_landmark(model, K):
    ypr = [10.0, 0.0, 0.0]
    p = make_params(model, ypr, coeff=0.0)
    lmk = model_landmarks_px(model, p, K).clone()
    lmk[0, 30] += torch.tensor([40.0, -30.0])  # a gross detector error on the nose tip
    robust = fit_landmarks(lmk, model=model, K=K, config=FitConfig(lmk_huber_px=2.0))
    plain = fit_landmarks(lmk, model=model, K=K, config=FitConfig(lmk_huber_px=1e6))
    e_r = (robust.pose_deg - torch.tensor([ypr])).abs().max()
    e_p = (plain.pose_deg - torch.tensor([ypr])).abs().max()
    assert e_r < e_p


def test_batch_of_two_equals_two_singles(model, K):
    p1 = make_params(model, [30.0, 5.0, 0.0], coeff=0.5, seed=2)
    p2 = make_params(model, [-50.0, -5.0, 10.0], coeff=0.5, seed=3)
    l1, l2 = model_landmarks_px(model, p1, K).double(), model_landmarks_px(model, p2, K).double()
    l2 = l2 + torch.randn(l2.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = FitConfig()
    K64 = K.double()
    r1 = fit_landmarks(l1, model=model, K=K64, config=cfg)
    r2 = fit_landmarks(l2, model=model, K=K64, config=cfg)
    rb = fit_landmarks(torch.cat([l1, l2]), model=model, K=K64.expand(2, 3, 3), config=cfg)
    for a, b in ((r1, 0), (r2, 1)):
        assert torch.allclose(rb.params.shape[b], a.params.shape[0], atol=1e-6)
        assert torch.allclose(rb.params.trans[b], a.params.trans[0], atol=1e-8)
        assert torch.allclose(rb.lmk_px[b], a.lmk_px[0], atol=1e-5)


def test_callback_and_init_result(model, K):
    p = make_params(model, [0.0, 0.0, 0.0], coeff=0.5)
    lmk = model_landmarks_px(model, p, K)
    seen = []
    r1 = fit_landmarks(lmk, model=model, K=K, config=FitConfig(lmk_iters=3), callback=lambda i, s: seen.append((i, s.stage)))
    assert [i for i, _ in seen] == list(range(r1.n_iters)) and seen[0][1] == "landmarks"
    r2 = fit_landmarks(lmk, model=model, K=K, init=r1)
    r3 = r2.to("cpu").detach()
    assert torch.equal(r3.lmk_px, r2.lmk_px) and not r3.verts_cam.requires_grad
    assert r2.losses["landmarks/total"][0] <= r1.losses["landmarks/total"][-1] + 1e-6


def test_float64_supported(model, K):
    p = make_params(model, [20.0, 0.0, 0.0], coeff=0.0)
    lmk = model_landmarks_px(model, p, K).double()
    res = fit_landmarks(lmk, model=model, K=K.double(), config=FitConfig())
    assert res.params.shape.dtype == torch.float64


def test_bad_shapes_raise(model, K):
    lmk = torch.zeros(1, 68, 2)
    with pytest.raises(ShapeError, match="fit_landmarks"):
        fit_landmarks(torch.zeros(1, 67, 2), model=model, K=K)
    with pytest.raises(ShapeError, match="K must be"):
        fit_landmarks(torch.zeros(3, 68, 2), model=model, K=K.expand(2, 3, 3))
    with pytest.raises(ShapeError):
        fit_landmarks(torch.zeros(1, 68, 2, dtype=torch.int64), model=model, K=K)
    with pytest.raises(ShapeError, match="init"):
        fit_landmarks(lmk, model=model, K=K, init=FaceParams.zeros(model, 2))
    with pytest.raises(ShapeError):
        init_pose_from_landmarks(torch.zeros(2, 68, 3), model, K)
    with pytest.raises(ShapeError):
        FaceParams.zeros(model, 2).__class__(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 1), torch.zeros(3, 3),
                                             torch.zeros(2, 3), torch.zeros(2, 9, 3))
    with pytest.raises(ValueError):
        FitConfig(robust="l1")


# -- losses ---------------------------------------------------------------------------------------
def test_losses_are_per_sample():
    pred = torch.randn(3, 68, 2)
    tgt = torch.randn(3, 68, 2)
    assert landmark_loss(pred, tgt).shape == (3,)
    assert gaussian_prior(torch.randn(3, 5)).shape == (3,)
    assert landmark_loss(tgt, tgt).abs().max() == 0
    # huber grows linearly far out
    far = landmark_loss(tgt + 100.0, tgt, face_size=torch.full((3,), 200.0), huber_px=1.0)
    assert torch.allclose(far, torch.full((3,), 2 * 100 * math.sqrt(2) - 1.0), rtol=1e-4)
    with pytest.raises(ShapeError):
        landmark_loss(pred, tgt[:2])


def test_params_to_detach_index(model):
    p = FaceParams.zeros(model, 3)
    q = p.to("cpu").detach()
    assert q.index(1).batch_size == 1 and q.light.shape == (3, 9, 3)


def test_module_doctests():
    for mod in (losses_mod, params_mod):
        res = doctest.testmod(mod)
        assert res.failed == 0 and res.attempted > 0


def test_fit_starts_from_a_given_pose(model, K):
    """``fit(init_pose_deg=)`` (the regressor's pose head): with no iterations the fit stays there;
    with iterations it converges as from the closed-form start."""
    from recon3d.fitting import fit

    ypr = [50.0, 8.0, -4.0]
    p = make_params(model, ypr, coeff=0.5, seed=2)
    lmk = model_landmarks_px(model, p, K)
    img = torch.zeros(1, H, W, 3)
    start = torch.tensor([[35.0, 0.0, 0.0]])
    r0 = fit(img, lmk, model=model, K=K, config=FitConfig(photo=False, lmk_iters=0), init_pose_deg=start)
    assert (r0.pose_deg - start).abs().max() < 1e-3
    r1 = fit(img, lmk, model=model, K=K, config=FitConfig(photo=False), init_pose_deg=start)
    r2 = fit(img, lmk, model=model, K=K, config=FitConfig(photo=False))
    assert (r1.pose_deg - torch.tensor([ypr])).abs().max() < 2.0
    assert (r1.pose_deg - r2.pose_deg).abs().max() < 0.5
    with pytest.raises(ShapeError):
        fit(img, lmk, model=model, K=K, config=FitConfig(photo=False), init_pose_deg=torch.zeros(3))
