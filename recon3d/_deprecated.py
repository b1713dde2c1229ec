"""Deprecated module paths kept working for one release: the old module warns once when imported
and resolves its public names lazily from their new homes (so that importing, say, the old
``recon3d.edit.occnet`` does not load the training-data code its old names now live in)."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable

__all__ = ["moved_module"]


def moved_module(old: str, new: str, names: dict[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """Warn that module ``old`` is deprecated (use ``new``) and return ``(__all__, __getattr__)``
    for it; ``names`` maps each old public name to ``"module"`` or ``"module:new_name"``."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}", DeprecationWarning,
                  stacklevel=3)

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr or name)

    return list(names), __getattr__
