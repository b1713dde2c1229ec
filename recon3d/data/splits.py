"""Deterministic hash splits and seeds: the same name always lands in the same split, on any
machine, whatever the order or the number of photos.

Both training sets use it: the synthesized pose set (keys ``<folder>__<stem>``, 10 % held out by
default) and the occluder crops (keys ``<folder>/<stem>``, 5 % held out).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["hash32", "is_held_out", "photo_key"]


def hash32(text: str) -> int:
    """The first 32 bits of the sha256 of ``text`` as an int (a stable seed or split value).

    >>> hash32("abc")
    3128432319
    """
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def is_held_out(key: str, percent: float) -> bool:
    """Whether ``key`` falls into the held-out ``percent`` (steps of 0.01 %).

    >>> is_held_out("abc", 100.0), is_held_out("abc", 0.0)
    (True, False)
    """
    return (hash32(key) % 10000) < percent * 100


def photo_key(path: str | Path, sep: str = "__") -> str:
    """Stable name of a photo for splits: ``<folder><sep><stem>``.

    >>> photo_key("a/b/c.jpg"), photo_key("a/b/c.jpg", "/")
    ('b__c', 'b/c')
    """
    p = Path(path)
    return f"{p.parent.name}{sep}{p.stem}"
