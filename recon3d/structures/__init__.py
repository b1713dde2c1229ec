"""recon3d.structures: typed result types (Mesh, Reconstruction, ...). Data only: no I/O, no maths beyond accessors."""

from .mesh import Mesh
from .reconstruction import Reconstruction

__all__ = ["Mesh", "Reconstruction"]
