"""The public top-level API is listed in tests/data/api_surface.txt; changing it is a deliberate act."""

from pathlib import Path

import recon3d


def test_all_matches_surface_file():
    listed = (Path(__file__).parent / "data" / "api_surface.txt").read_text().split()
    assert sorted(recon3d.__all__) == sorted(listed)


def test_every_public_name_resolves():
    for name in recon3d.__all__:
        if name == "load_default_model":
            continue  # resolved in tests/test_default_model.py (needs the shipped asset)
        assert getattr(recon3d, name) is not None, name


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError):
        recon3d.no_such_thing  # noqa: B018


def test_old_top_level_names_warn_and_resolve():
    import pytest

    from recon3d.errors import NoFaceError

    assert "NoFaceError" not in recon3d.__all__
    with pytest.warns(DeprecationWarning, match="from recon3d.errors import NoFaceError"):
        assert recon3d.NoFaceError is NoFaceError
