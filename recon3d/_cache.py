"""The one process-wide cache of loaded models (networks, dlib models, renderers).

Every loader that keeps a heavy object alive between calls goes through :func:`cached`, so there is
one place to inspect (:func:`cache_keys`) and to empty (:func:`clear_caches`, e.g. in tests or after
swapping weights on disk). Keys are tuples; the first element names the owner (``"nn"``, ``"dlib"``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable

__all__ = ["cached", "clear_caches", "cache_keys"]

_STORE: dict[Hashable, Any] = {}
_LOCK = threading.RLock()


def cached(key: Hashable, factory: Callable[[], Any]) -> Any:
    """Return the object stored under ``key``, building it with ``factory()`` on the first call.

    >>> cached(("doc", 1), lambda: [1]) is cached(("doc", 1), lambda: [2])
    True
    >>> clear_caches("doc")
    """
    with _LOCK:
        if key not in _STORE:
            _STORE[key] = factory()
        return _STORE[key]


def clear_caches(owner: str | None = None) -> None:
    """Forget cached objects: all of them, or those whose key starts with ``owner``."""
    with _LOCK:
        for k in list(_STORE):
            if owner is None or (isinstance(k, tuple) and k and k[0] == owner):
                del _STORE[k]


def cache_keys() -> list[Hashable]:
    """The keys now cached (for diagnostics and tests)."""
    with _LOCK:
        return list(_STORE)
