"""A dot product whose bits do not depend on the machine's thread count.

numpy's ``@`` and ``np.dot`` on long vectors call the BLAS, which splits the sum across its
threads: the rounding, and with it a fit's last digits (at a flat ridge, its stopping point),
then change with the number of cores. ``np.einsum`` without ``optimize`` adds in numpy's own
single-threaded loop, about as fast, in the same order on every machine of a build.
"""

from __future__ import annotations

import numpy as np


def dot(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """``a @ b`` for a vector ``a``: a float for a vector ``b``, per column for a matrix.

    Examples
    --------
    >>> dot(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    11.0
    >>> dot(np.array([1.0, 2.0]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    array([1., 2.])
    """
    if np.ndim(b) == 1:
        return float(np.einsum("i,i->", a, b))
    return np.einsum("i,ij->j", a, b)
