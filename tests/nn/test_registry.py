"""The checkpoint registry of recon3d.nn: safetensors round trip, the one cache, format checks, safe loading;
and the layer rules of the neural half (inference code never loads training code)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recon3d._cache import cache_keys, clear_caches
from recon3d.errors import AssetError
from recon3d.nn import NETWORKS, load_network, save_network
from recon3d.nn.landmarks import LANDMARK_NET, LandmarkNet, load_regressor
from recon3d.nn.occluder import OCCLUDER_NET, OccluderNet


def test_round_trip_keeps_config_meta_and_outputs(tmp_path):
    net = LandmarkNet(width=(8, 12, 16, 24, 32), hidden=64).eval()
    torch.nn.init.normal_(net.fc2.weight, std=0.01)
    p = tmp_path / "lm.safetensors"
    save_network(net, p, LANDMARK_NET, meta={"note": "x"}, half=False)
    net2, meta = load_network(LANDMARK_NET, p, cached=False)
    assert meta == {"note": "x"} and net2.config == net.config and not net2.training
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(net(x), net2(x))  # fp32 file: identical outputs
    save_network(net, p, LANDMARK_NET)  # fp16 by default
    with torch.no_grad():
        torch.testing.assert_close(load_network(LANDMARK_NET, p, cached=False)[0](x), net(x), atol=2e-2, rtol=0)


def test_cached_loads_share_one_object_in_the_process_cache(tmp_path):
    p = tmp_path / "occ.safetensors"
    save_network(OccluderNet(width=(4, 8, 8, 8)), p, OCCLUDER_NET)
    clear_caches("nn")
    a, _ = load_network(OCCLUDER_NET, p)
    b, _ = load_network(OCCLUDER_NET, p)
    assert a is b
    assert ("nn", "occluder", str(p), "None") in cache_keys()
    assert load_network(OCCLUDER_NET, p, cached=False)[0] is not a  # a private copy
    clear_caches("nn")
    assert load_network(OCCLUDER_NET, p)[0] is not a  # emptied: loaded again
    clear_caches("nn")


def test_shipped_regressor_is_loaded_once():
    clear_caches("nn")
    r1, r2 = load_regressor(), load_regressor(flip_test=False, passes=1)
    assert r1.net is r2.net
    assert [k for k in cache_keys() if k[:2] == ("nn", "landmarks")] == [("nn", "landmarks", "None", "None")]


def test_wrong_files_are_refused(tmp_path):
    p = tmp_path / "occ.safetensors"
    save_network(OccluderNet(width=(4, 8, 8, 8)), p, OCCLUDER_NET)
    with pytest.raises(AssetError, match="not a recon3d landmark regressor"):
        load_network(LANDMARK_NET, p)
    with pytest.raises(AssetError, match="not found"):
        load_network(LANDMARK_NET, tmp_path / "missing.safetensors")
    # right format tag, weights of another configuration
    sd = {k: v for k, v in OccluderNet(width=(4, 8, 8, 8)).state_dict().items()}
    save_file(sd, str(tmp_path / "bad.safetensors"),
              metadata={"format": OCCLUDER_NET.format, "config": '{"width": [16, 32, 64, 96]}'})
    with pytest.raises(AssetError, match="do not match the configuration"):
        load_network(OCCLUDER_NET, tmp_path / "bad.safetensors", cached=False)


class _Trap:
    """Unpickling this writes a marker file: a loader that unpickles executes code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "executed"
    p = tmp_path / "trap.safetensors"
    torch.save({"net": _Trap(marker)}, p)
    assert not marker.exists()
    with pytest.raises(AssetError, match="not a safetensors file"):
        load_network(LANDMARK_NET, p, cached=False)
    assert not marker.exists()


def test_networks_table_names_every_network():
    from recon3d.nn.identity import IDENTITY_NET

    assert set(NETWORKS) == {"landmarks", "occluder", "identity", "stylegan2", "stylegan2-d", "dcgan", "dcgan-d",
                             "restorer", "refsr", "mtcnn", "inpainter", "rotation_refiner",
                             "uv_generator", "latent_pose"}
    assert (NETWORKS["landmarks"], NETWORKS["occluder"], NETWORKS["identity"]) == (LANDMARK_NET, OCCLUDER_NET, IDENTITY_NET)
    assert all(s.format for s in NETWORKS.values())
    # every network ships its weights except the identity network, whose source is dlib's installed .dat
    assert [n for n, s in NETWORKS.items() if not s.asset] == ["identity"]


def test_old_import_paths_warn_and_point_to_the_new_homes():
    import importlib

    from recon3d.data.occluders import shape_bank
    from recon3d.nn.occluder import occluder_input
    from recon3d.ops.crop import LANDMARK_CROP_SCALE
    from recon3d.train.recipes.landmarks import TrainConfig

    for old in ("recon3d.regressor", "recon3d.regressor.net", "recon3d.regressor.synth", "recon3d.regressor.train",
                "recon3d.edit.occnet"):
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match="deprecated"):
            importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from recon3d.edit import occnet
        from recon3d.regressor import net, synth, train
    assert net.load_regressor is load_regressor and train.TrainConfig is TrainConfig
    assert synth.CROP_SCALE == LANDMARK_CROP_SCALE and occnet.shape_bank is shape_bank
    assert occnet.standardise is occluder_input
    with pytest.raises(AttributeError):
        net._crop  # noqa: B018  (private names are not aliased)


def test_inference_imports_no_training_code():
    code = ("import sys, recon3d.reconstruct, recon3d.detect.recon3d_backend, recon3d.edit, recon3d.nn, "
            "recon3d.nn.occluder, recon3d.ops.crop, recon3d.ops.anchors\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('recon3d.train', 'recon3d.data', 'recon3d.regressor')))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_standardise_matches_per_network_constants():
    from recon3d.nn.landmarks import normalise
    from recon3d.nn.preprocess import standardise

    u8 = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8))
    x = u8.permute(0, 3, 1, 2).float() / 255.0
    assert torch.equal(normalise(u8), (x - 0.5) / 0.25)
    assert torch.equal(standardise(x, 0.5, 0.25), standardise(x, (0.5,) * 3, (0.25,) * 3))
