"""Smoke test of bench/restore.py on a tiny synthetic folder (no ../shared data needed)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RES = 32


def _bench():
    name = "_bench_restore"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "restore.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up while the class is built
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture()
def faces_dir(tmp_path, monkeypatch):
    """12 smooth synthetic 'faces' (square, one size: an aligned folder), cache under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    d = tmp_path / "faces"
    d.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    for i in range(12):
        c = rng.uniform(40, 215, (3, 3))
        img = np.stack([c[k, 0] + c[k, 1] * xx * yy / 255 * 40 + 30 * np.sin(6 * xx + c[k, 2]) for k in range(3)], -1)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{i:02d}.png")
    return d


class Oracle(torch.nn.Module):
    """Returns the ground truth of the input it is given (looked up among the benchmark's inputs),
    so its scores must beat the input row's: a check on the direction of the metrics."""

    uses_reference = False

    def __init__(self, inputs: torch.Tensor, truth: torch.Tensor):
        super().__init__()
        self.inputs, self.truth = inputs.flatten(1), truth

    def forward(self, x, reference=None):
        return self.truth[torch.cdist(x.flatten(1), self.inputs).argmin(1)]


def _plain(net, faces, reference=None):
    return net(faces, reference)


def test_oracle_beats_input(faces_dir):
    rb = _bench()
    data = rb.load_dataset(faces_dir, RES, split="all", n=6, seed=0)
    assert data.kind == "aligned" and tuple(data.images.shape) == (6, 3, RES, RES)
    lq = torch.cat([rb.to_float(rb.make_input(data.images, data.keys, p, 0)) for p in rb.PROTOCOLS])
    truth = rb.to_float(data.images).repeat(len(rb.PROTOCOLS), 1, 1, 1)
    res = rb.run_bench([data], {"oracle": Oracle(lq, truth)}, seed=0, restore=_plain)
    for proto in rb.PROTOCOLS:
        rows = res["datasets"]["faces"]["protocols"][proto]
        assert list(rows) == ["input", "oracle"]
        assert rows["oracle"]["psnr"] > rows["input"]["psnr"] + 3
        assert rows["oracle"]["ssim"] > rows["input"]["ssim"]
        assert rows["oracle"]["id_cos"] >= rows["input"]["id_cos"] - 1e-9
        assert rows["oracle"]["ssim"] == pytest.approx(1.0) and rows["oracle"]["id_cos"] == pytest.approx(1.0)
        assert all(math.isfinite(v) for m in rows.values() for v in m.values())
    table = rb.format_tables(res)
    assert "| oracle |" in table and "| input |" in table


def test_degradations_are_seeded_per_face(faces_dir):
    rb = _bench()
    data = rb.load_dataset(faces_dir, RES, split="all")
    a = rb.make_input(data.images, data.keys, "blind", 3)
    b = rb.make_input(data.images[2:5], data.keys[2:5], "blind", 3)  # other faces around: same result
    assert torch.equal(a[2:5], b)
    assert not torch.equal(a, rb.make_input(data.images, data.keys, "blind", 4))
    lo, up = rb.bicubic_x4(data.images)
    assert tuple(lo.shape[-2:]) == (RES // 4, RES // 4) and up.shape == data.images.shape


def test_cli_with_tiny_models(faces_dir, tmp_path):
    restoration = pytest.importorskip("recon3d.nn.restoration")
    from recon3d.nn.registry import save_network

    torch.manual_seed(0)
    tiny = {32: 8, 16: 8, 8: 16, 4: 16}
    plain = restoration.FaceRestorer(res=RES, kind="unet", channels=tiny)
    paths = {"tiny": tmp_path / "tiny.safetensors"}
    save_network(plain, paths["tiny"], restoration.RESTORER, half=False)
    # seed 004's reference-guided variant, tiny and without the StyleGAN2 prior
    ref = restoration.FaceRestorer(res=RES, kind="codec", prior=False, reference=True, channels=tiny, enc_blocks=1)
    assert ref.uses_reference
    paths["tiny-ref"] = tmp_path / "tiny_ref.safetensors"
    save_network(ref, paths["tiny-ref"], restoration.REF_SR, half=False)
    out_json, fig = tmp_path / "r.json", tmp_path / "r.jpg"
    rb = _bench()
    rc = rb.main([str(faces_dir), "--split", "all", "--n", "5", "--res", str(RES), "--json", str(out_json),
                  "--figure", str(fig), "--models", *(f"{k}={v}" for k, v in paths.items())])
    assert rc == 0 and fig.is_file()
    res = json.loads(out_json.read_text())
    rows = res["datasets"]["faces"]["protocols"]
    assert set(rows) == {"blind", "x4"}
    for proto in rows.values():
        assert list(proto) == ["input", *paths]
        assert all(math.isfinite(v) for m in proto.values() for v in m.values())
    assert set(res["timing"]) == set(paths)
    assert res["reference"]["models"] == ["tiny-ref"]
    m = res["reference"]["sets"]["synthesized (faces)"]["models"]["tiny-ref"]
    assert m["n"] == 5 and all(math.isfinite(m[k]) for k in ("id_cos_with", "id_cos_without", "delta"))
