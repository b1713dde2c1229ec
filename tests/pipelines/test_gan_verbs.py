"""pipelines.train_gan and pipelines.generate end to end on a tiny folder: a short run exports weights
that load without executing code, generation is seeded, bad input gets one-line errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines import generate, train_gan
from recon3d.assets import read_weights
from recon3d.nn.generation import load_generator

TINY = ["--res", "16", "--batch", "4", "--channels", "4:8,8:8,16:8", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gan")
    faces = d / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(faces / f"f{i}.png")
    out = d / "G.safetensors"
    rc = train_gan.main(["--arch", "stylegan2", "--data", str(faces), "--out", str(d / "run"), "--steps", "3",
                         "--export", str(out), "--val-percent", "0", "--cache-dir", str(d / "cache"), *TINY])
    assert rc == 0
    return out


def test_export_is_plain_safetensors_with_the_training_record(exported):
    sd, md = read_weights(exported, "recon3d-stylegan2-generator-v1", "generator")
    meta = json.loads(md["meta"])
    assert meta["steps"] == 3 and meta["images_seen"] == 12 and "train_gan" in meta["command"]
    assert "non-commercial" in meta["licence"]
    assert exported.with_name("G_d.safetensors").is_file()
    G, _ = load_generator("stylegan2", exported)
    assert G.res == 16 and G.config["channels"] == {"4": 8, "8": 8, "16": 8}


def test_generate_is_seeded_and_writes_images_grid_gif(exported, tmp_path):
    args = ["--weights", str(exported), "--n", "5", "--seed", "3", "--truncation", "0.7", "--keys", "2",
            "--frames", "2", "-q"]
    assert generate.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert generate.main([*args, "--out", str(tmp_path / "b")]) == 0
    a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert a == ["generate.json", "grid.png", "interpolation.gif"] + [f"seed3_{i:04d}.png" for i in range(5)]
    for name in a:
        if name.endswith(".png"):
            assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / name)), np.asarray(Image.open(tmp_path / "b" / name)))
    assert Image.open(tmp_path / "a" / "interpolation.gif").n_frames == 4
    rec = json.loads((tmp_path / "a" / "generate.json").read_text())
    assert rec["seed"] == 3 and rec["res"] == 16 and len(rec["weights_sha256"]) == 64
    assert generate.main([*args[:-1], "--seed", "4", "--out", str(tmp_path / "c"), "-q"]) == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a" / "seed3_0000.png")),
                              np.asarray(Image.open(tmp_path / "c" / "seed4_0000.png")))


def test_bad_inputs_get_one_line_errors(exported, tmp_path, capsys):
    assert generate.main(["--weights", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert generate.main(["--arch", "dcgan", "--weights", str(exported), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        generate.main(["--n", "0", "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    capsys.readouterr()
    assert train_gan.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--cache-dir",
                           str(tmp_path / "cache"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
