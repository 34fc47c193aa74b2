"""How a stored weight (an ONNX initializer) is the ``[groups, K, N]``
matrix the arrays hold, and back: rows ``K`` are the reduction (a
convolution's input channels, each with its ``kh x kw`` window positions
next to each other), columns ``N`` the outputs.

The functional executor reads weights through :func:`as_matrix`, the
sparsity analysis and the pruning tool through it and
:func:`from_matrix`, so every view of a weight is the arrays' own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from cimflow.errors import CimError

Matrix = NDArray[Any]


def as_matrix(
    name: str, layout: str, groups: int, k: int, n: int, stored: Matrix
) -> Matrix:
    """``stored`` (of layout ``kn``, ``nk`` or ``oihw``) as ``[groups, k,
    n]`` blocks; a one-line error when its size is not ``groups * k * n``."""
    if stored.size != groups * k * n:
        raise CimError(
            f"weight '{name}' has shape {list(stored.shape)}, not {groups} "
            f"blocks of {k} x {n} ({layout})"
        )
    if layout == "kn":
        return stored.reshape(groups, k, n)
    # nk, and oihw: [G*N, K/(kh*kw), kh, kw] is [G, N, K] row-major
    return stored.reshape(groups, n, k).transpose(0, 2, 1)


def from_matrix(layout: str, matrix: Matrix, shape: tuple[int, ...]) -> Matrix:
    """The stored weight of ``shape`` whose :func:`as_matrix` view is
    ``matrix``."""
    if layout == "kn":
        return np.ascontiguousarray(matrix).reshape(shape)
    return np.ascontiguousarray(matrix.transpose(0, 2, 1)).reshape(shape)
