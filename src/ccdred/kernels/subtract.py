"""Subtraction of a scaled master (bias, dark), with its variance and flags, in one pass."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["subtract_scaled"]


@njit(cache=True, error_model="numpy")
def _subtract(data, variance, dq, master, master_variance, master_dq, k, out, out_variance,
              out_dq):
    rows, cols = data.shape
    for r in range(rows):
        for c in range(cols):
            # Frame arithmetic's float32 steps, in its order: d - m k, v + (w k) k.
            scaled = master[r, c] * k
            out[r, c] = data[r, c] - scaled
            w = master_variance[r, c] * k
            out_variance[r, c] = variance[r, c] + w * k
            out_dq[r, c] = dq[r, c] | master_dq[r, c]


def subtract_scaled(data: np.ndarray, variance: np.ndarray, dq: np.ndarray,
                    master: np.ndarray, master_variance: np.ndarray, master_dq: np.ndarray,
                    scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``data - scale * master``, its variance and flags, in one pass.

    The values of `ccdred.frame.Frame`'s ``frame - master * scale`` (float32, step by step:
    ``master * k`` then the difference; the variance ``v + (w k) k``; the flags OR-ed), with
    no temporaries. With ``scale`` 1 they are those of ``frame - master``.

    Parameters
    ----------
    data, variance, dq : ndarray (2-D)
        The frame: float32 values and variance, uint16 flags.
    master, master_variance, master_dq : ndarray (2-D)
        The master, the same way.
    scale : float
        The master's factor, taken as float32 (as Frame multiplication takes it).

    Returns
    -------
    data, variance : ndarray of float32
    dq : ndarray of uint16

    Raises
    ------
    ValueError
        The arrays differ in shape or are not 2-D, or their types are not those above (other
        types would change the values).
    """
    arrays = {"data": data, "variance": variance, "dq": dq, "master": master,
              "master variance": master_variance, "master dq": master_dq}
    for name, array in arrays.items():
        if np.shape(array) != np.shape(data) or np.ndim(array) != 2:
            raise ValueError(f"{name} is {np.shape(array)}, not 2-D like the data "
                             f"{np.shape(data)}")
        wanted = np.uint16 if name.endswith("dq") else np.float32
        if array.dtype != wanted:
            raise ValueError(f"{name} must be {np.dtype(wanted)}, got {array.dtype}")
    # numpy allocates the outputs: it asks for huge pages, so filling them faults 512 times
    # fewer pages than memory the kernel would allocate itself (2x faster at 2048^2).
    out = np.empty(data.shape, np.float32)
    out_variance = np.empty(data.shape, np.float32)
    out_dq = np.empty(data.shape, np.uint16)
    _subtract(data, variance, dq, master, master_variance, master_dq, np.float32(scale), out,
              out_variance, out_dq)
    return out, out_variance, out_dq
