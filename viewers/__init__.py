"""Open3D viewers for recon3d results (``python -m viewers.face PATH``).

Importing this package does not import Open3D; the viewers import it when they open a window and
print ``pip install -e .[viewer]`` when it is missing.
"""

__all__: list[str] = []
