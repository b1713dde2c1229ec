"""The shipped generators: checksum-verified, loaded without any pickle (no code execution), and they
reproduce the faces recorded when they were shipped (tools/record_generator_fingerprints.py)."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from recon3d.nn.generation import GENERATORS, generate, load_generator
from recon3d.nn.registry import load_network

RECORD = json.loads((Path(__file__).resolve().parents[1] / "data" / "generator_fingerprints.json").read_text())


@pytest.mark.parametrize("arch", sorted(RECORD))
def test_shipped_generator_loads_without_pickle_and_reproduces_its_record(arch, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a pickle was opened")

    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    G, meta = load_network(GENERATORS[arch], cached=False)
    assert meta["cpu_minutes"] > 0 and "non-commercial" in meta["licence"]
    monkeypatch.undo()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the record was made with one thread
    try:
        x = generate(G.float(), 4, seed=0, truncation=0.7)
    finally:
        torch.set_num_threads(threads)
    thumb = torch.nn.functional.avg_pool2d(x, x.shape[-1] // 8).flatten()
    # 768 block means to 2e-4: wrong or damaged weights cannot pass. The record's byte hash of the uint8 images
    # is not compared: float kernels differ between CPU models (an AMD EPYC here rounds a few StyleGAN2 pixels
    # to the other uint8 value than the machine that made the record), so bit-exact bytes are not portable.
    torch.testing.assert_close(thumb, torch.tensor(RECORD[arch]["thumbnail"]), rtol=0, atol=2e-4)
    from recon3d.io.image import batch_to_uint8

    u8 = batch_to_uint8(x)
    assert u8.dtype.name == "uint8" and u8.shape[0] == 4


def test_generator_cache_and_discriminators_are_shipped():
    a, _ = load_generator("stylegan2")
    b, _ = load_generator("stylegan2")
    assert a is b
    from recon3d.nn import NETWORKS

    for name in ("stylegan2-d", "dcgan-d"):
        D, _ = load_network(NETWORKS[name], cached=False)
        assert D.float()(torch.zeros(2, 3, 64, 64)).shape == (2,)
