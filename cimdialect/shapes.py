"""Shape arithmetic shared by the dialects' verifiers, the frontend and passes."""

from __future__ import annotations

import math
from collections.abc import Sequence


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...] | None:
    """Numpy broadcasting of several shapes; None when they do not broadcast."""
    rank = max((len(s) for s in shapes), default=0)
    result: list[int] = []
    for axis in range(rank):
        size = 1
        for shape in shapes:
            offset = axis - (rank - len(shape))
            if offset < 0:
                continue
            dim = shape[offset]
            if dim == 1:
                continue
            if size not in (1, dim):
                return None
            size = dim
        result.append(size)
    return tuple(result)


def conv_output_size(
    size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int
) -> int:
    """Output length of one spatial axis of a convolution or pooling window."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_shape(
    input_shape: Sequence[int],
    out_channels: int,
    kernel: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...]:
    """NCHW output of a 2-D window op; ``pads`` is ONNX's [begins..., ends...]."""
    spatial = len(kernel)
    return (
        input_shape[0],
        out_channels,
        *(
            conv_output_size(
                input_shape[2 + i],
                kernel[i],
                strides[i],
                pads[i],
                pads[spatial + i],
                dilations[i],
            )
            for i in range(spatial)
        ),
    )


def matmul_output_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """Numpy ``matmul`` result shape (operands of rank >= 2), or None."""
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        return None
    batch = broadcast_shapes(a[:-2], b[:-2])
    if batch is None:
        return None
    return (*batch, a[-2], b[-1])


def slice_length(start: int, end: int, step: int) -> int:
    """Elements of ``range(start, end, step)`` for normalized bounds."""
    if step > 0:
        return max(0, math.ceil((end - start) / step))
    return max(0, math.ceil((start - end) / -step))


def num_elements(shape: Sequence[int]) -> int:
    return math.prod(shape)


def normalize_axis(axis: int, rank: int) -> int | None:
    """Map a possibly negative axis into ``[0, rank)``; None when out of range."""
    if axis < 0:
        axis += rank
    return axis if 0 <= axis < rank else None
