"""Pseudo-labels for unlabelled face crops (issue 19, lever 1) and their synthesized views."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def faces(shared_dir):
    d = shared_dir / "faces-128"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return sorted(d.glob("*.jpg"))[:3]


@pytest.fixture(scope="module")
def model():
    from recon3d.morphable.default import load_default_model

    return load_default_model()


def test_pad_reflect_keeps_the_photo_in_the_middle():
    from recon3d.data.pseudo_labels import pad_reflect

    img = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    out = pad_reflect(img, 8)
    assert out.shape == (36, 46, 3)
    np.testing.assert_array_equal(out[8:28, 8:38], img)
    np.testing.assert_array_equal(out[8:28, 7], img[:, 1])  # mirrored, edge pixel not repeated
    assert pad_reflect(img, 0) is img
    assert pad_reflect(img[:2, :2], 5).shape == (12, 12, 3)  # smaller than the padding: still padded


def test_real_faces_are_accepted_and_noise_is_not(faces, model):
    from recon3d.data.pseudo_labels import PseudoLabelConfig, pseudo_label
    from recon3d.io import load_image
    from recon3d.nn.landmarks import load_regressor

    reg = load_regressor(passes=2, flip_test=False)
    cfg = PseudoLabelConfig()
    img = load_image(faces[1]).image.numpy()  # faces[0] is a borderline case: flip NME 0.026
    lab = pseudo_label(img, reg, model, cfg)
    assert lab.accepted and lab.lmk.shape == (68, 2)
    # the label sits on the face in the middle of the padded photo (eyes above the mouth)
    p = cfg.pad
    assert p < lab.lmk[:, 0].min() and lab.lmk[:, 0].max() < p + 128
    assert lab.lmk[36:48, 1].mean() < lab.lmk[48:68, 1].mean()
    noise = np.random.default_rng(1).random((128, 128, 3)).astype(np.float32)
    bad = pseudo_label(noise, reg, model, cfg)
    assert not bad.accepted
    # the thresholds are what decides
    strict = pseudo_label(img, reg, model, PseudoLabelConfig(max_flip_nme=0.0))
    assert not strict.accepted and strict.flip_nme == pytest.approx(lab.flip_nme)


def test_folder_labelling_resumes_and_feeds_the_synthesis(tmp_path, faces, model):
    from recon3d.data.landmark_set import load_samples, synthesize_set
    from recon3d.data.pseudo_labels import pseudo_label_folder, read_pad, read_pseudo_labels
    from recon3d.nn.landmarks import load_regressor

    src = tmp_path / "photos"
    src.mkdir()
    for f in faces:
        shutil.copy(f, src / f.name)
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    reg = load_regressor(passes=2, flip_test=False)
    out = tmp_path / "pl"
    photos = sorted(src.glob("*.jpg"))
    c0 = pseudo_label_folder(photos, out, reg, model, shard=(0, 2))
    c1 = pseudo_label_folder(photos, out, reg, model, shard=(1, 2))
    assert c0["done"] + c1["done"] == 3 and c0["failed"] + c1["failed"] == 1
    rows = read_pseudo_labels(out)
    assert set(rows) == {f.stem for f in faces}
    again = pseudo_label_folder(photos, out, reg, model, shard=(0, 2))
    assert again["done"] == 0 and again["skipped"] == c0["done"]
    assert read_pad(out) == 32
    with (out / "shard0of2" / "pseudo_labels.csv").open() as fh:
        assert list(next(csv.reader(fh))) == ["stem", "accepted", "yaw", "pitch", "roll", "flip_nme", "fit_nme"]
    labelled = [(src / f.name, out / "labels" / f"{f.stem}.npy") for f in faces if (out / "labels" / f"{f.stem}.npy").is_file()]
    assert labelled
    fails = synthesize_set(labelled, tmp_path / "synth", model, views=2, val_percent=0.0, pad=read_pad(out))
    assert fails == []
    s = load_samples(tmp_path / "synth", "train")
    assert len(s) == 3 * len(labelled)
    # padded by reflection, the crops' borders are far less black than the same views of the unpadded photos
    unpadded = []
    for img, lab in labelled:
        f = tmp_path / "unpadded" / lab.name
        f.parent.mkdir(exist_ok=True)
        np.save(f, np.load(lab) - read_pad(out))
        unpadded.append((img, f))
    assert synthesize_set(unpadded, tmp_path / "synth0", model, views=2, val_percent=0.0) == []
    s0 = load_samples(tmp_path / "synth0", "train")

    def black_border(images):
        b = np.concatenate([images[:, :6].reshape(-1, 3), images[:, -6:].reshape(-1, 3),
                            images[:, :, :6].reshape(-1, 3), images[:, :, -6:].reshape(-1, 3)])
        return float((b.max(1) < 8).mean())

    assert black_border(s.images) < 0.5 * black_border(s0.images), (black_border(s.images), black_border(s0.images))


def test_cli_refuses_the_test_set_and_bad_shards(tmp_path, capsys):
    from pipelines.pseudo_label import main

    with pytest.raises(SystemExit):
        main([str(tmp_path / "aflw2000-3d-dev"), "--out", str(tmp_path / "o")])
    assert "test set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "o"), "--shard", "2/2"])
    assert main([str(tmp_path), "--out", str(tmp_path / "o")]) == 2
