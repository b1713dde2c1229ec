"""The degradation model (recon3d.data.degrade): kernels, operations, seeded params, the eval-set builder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from recon3d.data import degrade as dg
from recon3d.data.degrade import (
    DEGRADE_002,
    DEGRADE_004,
    DegradeParams,
    add_noise,
    blur,
    build_eval_set,
    degrade,
    degrade_batch,
    downsample,
    gaussian_kernel,
    jpeg,
    motion_kernel,
    pair_rng,
    sample_params,
)


def _face(size=64, seed=0):
    """A smooth image with some texture (not pure noise: JPEG and blur behave as on photos)."""
    y, x = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    base = np.stack([120 + 80 * np.sin(6 * x + c) * np.cos(4 * y) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _checker(size=64):
    return ((np.indices((size, size)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)


@pytest.mark.parametrize("size", [1, 5, 21, 41])
def test_kernels_sum_to_one_and_have_their_size(size):
    for k in (gaussian_kernel(size, 2.0), gaussian_kernel(size, 3.0, 0.7, 30.0),
              motion_kernel(size, 0.0, size), motion_kernel(size, 37.0, size / 2)):
        assert k.shape == (size, size)
        assert k.min() >= 0 and abs(k.sum() - 1) < 1e-12
    with pytest.raises(ValueError):
        gaussian_kernel(4, 1.0)


def test_gaussian_anisotropic_follows_its_angle():
    k = gaussian_kernel(21, 4.0, 1.0, 0.0)
    assert k[10].sum() > 3 * k[:, 10].sum()  # wide along x
    k90 = gaussian_kernel(21, 4.0, 1.0, 90.0)
    np.testing.assert_allclose(k90, k.T, atol=1e-12)
    np.testing.assert_allclose(gaussian_kernel(21, 2.0, 2.0, 33.0), gaussian_kernel(21, 2.0), atol=1e-12)


def test_motion_kernel_at_angle_0_is_a_horizontal_line():
    k = motion_kernel(9, 0.0, 5.0)
    rows = np.nonzero(k.sum(1))[0]
    assert rows.tolist() == [4]
    np.testing.assert_allclose(k[4], [0, 0, .2, .2, .2, .2, .2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(motion_kernel(9, 90.0, 5.0), k.T, atol=1e-12)
    diag = motion_kernel(9, 45.0, 7.0)
    assert diag[2, 6] > 0 and diag[6, 2] > 0 and diag[2, 2] == 0  # 45° rises to the right, as displayed


def test_gaussian_blur_of_a_constant_image_is_constant():
    img = np.full((20, 24, 3), 137, np.uint8)
    out = blur(img, gaussian_kernel(41, 8.0))  # kernel larger than the image: reflect padding copes
    assert out.dtype == np.uint8 and out.shape == img.shape and np.all(out == 137)
    outf = blur(img.astype(np.float32), motion_kernel(15, 20.0, 11.0))
    np.testing.assert_allclose(outf, 137.0, atol=1e-6)


def test_blur_reduces_high_frequency_energy():
    img = _checker().astype(np.float32)
    energy = lambda a: float(np.abs(np.diff(a, axis=1)).mean())  # noqa: E731
    assert energy(blur(img, gaussian_kernel(9, 1.5))) < 0.2 * energy(img)
    assert energy(blur(img, motion_kernel(9, 0.0, 5.0))) < 0.5 * energy(img)


def test_downsample_loses_detail_but_keeps_the_mean():
    img = _face(64)
    back, hw = downsample(img, 4.0)
    small, hw2 = downsample(img, 4.0, back=False)
    assert hw == hw2 == (16, 16) and small.shape == (16, 16, 3) and back.shape == img.shape
    assert abs(float(back.mean()) - float(img.mean())) < 1.0
    detail = lambda a: float(np.abs(np.diff(a.astype(np.float32), axis=0)).mean())  # noqa: E731
    assert detail(back) < 0.6 * detail(img)
    assert np.abs(back.astype(int) - img).mean() > 3
    assert downsample(img, 0.5, back=False)[1] == (128, 128)


@pytest.mark.parametrize("gray", [False, True])
def test_noise_std_matches_sigma(gray):
    img = np.full((128, 128, 3), 128, np.uint8)
    out = add_noise(img, 10.0, np.random.default_rng(0), gray=gray).astype(np.float64) - 128
    assert abs(out.std() - 10.0) < 1.0
    if gray:
        assert np.all(out[..., 0] == out[..., 1])
    else:
        assert np.abs(out[..., 0] - out[..., 1]).mean() > 5
    np.testing.assert_array_equal(add_noise(img, 10.0, 3), add_noise(img, 10.0, np.random.default_rng(3)))


def test_jpeg_quality_5_differs_more_than_50():
    img = _face(64)
    err = lambda q: float(np.abs(jpeg(img, q).astype(int) - img).mean())  # noqa: E731
    assert jpeg(img, 50).dtype == np.uint8 and jpeg(img, 50).shape == img.shape
    assert err(5) > 1.5 * err(50)


def test_sample_params_deterministic_and_inside_the_ranges():
    for preset in (DEGRADE_002, DEGRADE_004):
        assert sample_params(preset, pair_rng(7, 3)) == sample_params(preset.name, pair_rng(7, 3))
        assert sample_params(preset, pair_rng(7, 3)) != sample_params(preset, pair_rng(7, 4))
        rng = np.random.default_rng(0)
        draws = [sample_params(preset, rng) for _ in range(1000)]
        kinds = {d.kernel for d in draws}
        assert kinds == ({"gaussian", "motion"} if preset.p_motion else {"gaussian"})
        for d in draws:
            assert preset.kernel_size[0] <= d.kernel_size <= preset.kernel_size[1] and d.kernel_size % 2
            assert preset.scale[0] <= d.scale <= preset.scale[1]
            assert preset.noise_sigma[0] <= d.noise_sigma <= preset.noise_sigma[1]
            assert preset.jpeg_quality[0] <= d.jpeg_quality <= preset.jpeg_quality[1]
            if d.kernel == "gaussian":
                assert preset.sigma[0] <= d.sigma_x <= preset.sigma[1]
            else:
                assert preset.motion_length[0] <= d.length <= min(preset.motion_length[1], d.kernel_size)
        scales = np.array([d.scale for d in draws])
        assert scales.min() < preset.scale[0] + 0.1 and scales.max() > preset.scale[1] - 0.1  # the range is used
    small = DEGRADE_002.for_res(128)
    assert small.sigma == (0.05, 2.5) and small.kernel_size == (11, 11) and small.scale == DEGRADE_002.scale


def test_degrade_is_deterministic_and_its_record_reproduces_it():
    img = _face(48)
    params = sample_params("002", pair_rng(0, 5))
    lq, rec = degrade(img, params)
    lq2, rec2 = degrade(img.copy(), params)
    np.testing.assert_array_equal(lq, lq2)
    assert rec == rec2 and lq.shape == img.shape and lq.dtype == np.uint8
    rec = json.loads(json.dumps(rec))  # JSON-able, and the params survive it exactly
    assert DegradeParams.from_dict(rec) == params
    assert rec["lq_size"] == list(dg.lq_size((48, 48), params.scale)) and rec["hq_size"] == [48, 48]
    small, rec_small = degrade(img, params, resize_back=False)
    assert list(small.shape[:2]) == rec_small["lq_size"]
    other, _ = degrade(img, sample_params("002", pair_rng(0, 6)))
    assert not np.array_equal(lq, other)


def test_degrade_batch_is_nchw_and_seeded():
    imgs = torch.from_numpy(np.stack([_face(32, s) for s in range(3)])).permute(0, 3, 1, 2).contiguous()
    lq, recs = degrade_batch(imgs, 1, [10, 11, 12], "004")
    assert lq.shape == imgs.shape and lq.dtype == torch.uint8 and [r["index"] for r in recs] == [10, 11, 12]
    one, _ = degrade(imgs[1].permute(1, 2, 0).numpy(), sample_params("004", pair_rng(1, 11)))
    np.testing.assert_array_equal(lq[1].permute(1, 2, 0).numpy(), one)


def _folder(root, n=4):
    root.mkdir()
    for i in range(n):
        Image.fromarray(_face(32, i)).save(root / f"f{i}.png")
    return root


def _snapshot(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_build_eval_set_writes_resumes_and_is_deterministic(tmp_path):
    src = _folder(tmp_path / "src")
    out = tmp_path / "out"
    kw = dict(split="all", cache_dir=tmp_path / "cache")
    rep = build_eval_set(src, out, 4, 0, "002", 32, **kw)
    assert (rep.n_written, rep.n_skipped) == (4, 0)
    recs = [json.loads(line) for line in (out / "degradations.jsonl").read_text().splitlines()]
    assert [r["name"] for r in recs] == ["f0", "f1", "f2", "f3"]
    for r in recs:
        hq, lq = np.asarray(Image.open(out / r["hq"])), np.asarray(Image.open(out / r["lq"]))
        assert hq.shape == lq.shape == (32, 32, 3)
        np.testing.assert_array_equal(lq, degrade(hq, DegradeParams.from_dict(r))[0])
    first = _snapshot(out)
    (out / "lq" / "f2.png").unlink()  # an interrupted run: one pair incomplete
    rep = build_eval_set(src, out, 4, 0, "002", 32, **kw)
    assert (rep.n_written, rep.n_skipped) == (1, 3)
    assert _snapshot(out) == first  # byte-identical, the jsonl included
    again = tmp_path / "again"
    build_eval_set(src, again, 4, 0, "002", 32, **kw)
    assert _snapshot(again) == first
    with pytest.raises(dg.Recon3DError, match="other settings"):
        build_eval_set(src, out, 4, 1, "002", 32, **kw)


def test_cli_bad_args_exit_2(tmp_path, capsys):
    from pipelines.make_degraded_set import main

    src = _folder(tmp_path / "src", 2)
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert main([str(src), "--out", str(tmp_path / "o"), "--n", "0"]) == 2
    with pytest.raises(SystemExit) as e:
        main([str(src), "--out", str(tmp_path / "o"), "--preset", "999"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err
    assert main([str(src), "--out", str(tmp_path / "o"), "--split", "all", "--res", "16", "-q",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert len(list((tmp_path / "o" / "lq").glob("*.png"))) == 2
