"""Batch augmentation (recon3d.data.augment): DiffAugment and the flip/jitter of real photos."""

from __future__ import annotations

import pytest
import torch

from recon3d.data.augment import cutout, diff_augment, random_flip_jitter, to_float, to_uint8, translate


def _batch(n=4, h=16, w=16):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_to_float_to_uint8_round_trip():
    u = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    f = to_float(u)
    assert f.dtype == torch.float32 and float(f.min()) >= -1 and float(f.max()) <= 1
    assert torch.equal(to_uint8(f), u)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diff_augment_differentiable_and_seeded(policy):
    x = _batch().requires_grad_(True)
    y = diff_augment(x, policy, torch.Generator().manual_seed(5))
    assert y.shape == x.shape and y.dtype == x.dtype
    (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    y2 = diff_augment(x.detach(), policy, torch.Generator().manual_seed(5))
    assert torch.equal(y.detach(), y2)
    y3 = diff_augment(x.detach(), policy, torch.Generator().manual_seed(6))
    assert not torch.equal(y2, y3)


def test_diff_augment_identity_and_errors():
    x = _batch()
    assert diff_augment(x, "") is x
    with pytest.raises(ValueError, match="unknown"):
        diff_augment(x, "color,blur")
    with pytest.raises(TypeError):
        diff_augment(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "color")


def test_translate_moves_content():
    x = _batch(2, 12, 10)
    out = translate(x, torch.tensor([[3, -2], [-1, 4]]))
    assert torch.equal(out[0, :, 0:10, 3:], x[0, :, 2:12, :7])
    assert float(out[0, :, :, :3].abs().sum()) == 0 and float(out[0, :, 10:].abs().sum()) == 0
    assert torch.equal(out[1, :, 4:, :9], x[1, :, :8, 1:])
    assert float(out[1, :, :4].abs().sum()) == 0 and float(out[1, :, :, 9:].abs().sum()) == 0


def test_diff_augment_translation_is_an_integer_shift_within_an_eighth():
    x = _batch(6, 16, 16) + 2.0  # nonzero everywhere, so the zero fill shows the shift
    y = diff_augment(x, "translation", torch.Generator().manual_seed(1))
    shifts = set()
    for b in range(6):
        found = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
                 if torch.equal(y[b:b + 1], translate(x[b:b + 1], torch.tensor([[dx, dy]])))]
        assert found, b
        shifts.add(found[0])
    assert len(shifts) > 1


def test_cutout_square_of_half_size():
    x = torch.ones(1, 3, 16, 16)
    out = cutout(x, torch.tensor([[8, 8]]), (8, 8))
    assert float((out[0, 0] == 0).sum()) == 64 and float(out[0, :, 4:12, 4:12].abs().sum()) == 0
    y = diff_augment(torch.ones(8, 3, 16, 16), "cutout", torch.Generator().manual_seed(0))
    zeros = (y[:, 0] == 0).flatten(1).sum(1)
    assert bool((zeros > 0).all()) and bool((zeros <= 64).all())


def test_random_flip_jitter():
    u = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    plain = random_flip_jitter(u, torch.Generator().manual_seed(0), flip_p=0.0, brightness=0, contrast=0, saturation=0)
    assert torch.allclose(plain, to_float(u))
    flipped = random_flip_jitter(u, torch.Generator().manual_seed(0), flip_p=1.0, brightness=0, contrast=0,
                                 saturation=0)
    assert torch.allclose(flipped, to_float(u).flip(3))
    a = random_flip_jitter(u, torch.Generator().manual_seed(1), hue=0.1)
    b = random_flip_jitter(to_float(u), torch.Generator().manual_seed(1), hue=0.1)
    assert torch.allclose(a, b) and float(a.min()) >= -1 and float(a.max()) <= 1
    assert not torch.allclose(a, to_float(u))
    grey = torch.full((1, 3, 4, 4), 100, dtype=torch.uint8)
    g = random_flip_jitter(grey, torch.Generator().manual_seed(2), brightness=0, contrast=0, saturation=0.5, hue=0.3)
    assert torch.allclose(g, to_float(grey), atol=1e-5)  # hue and saturation leave grey alone
