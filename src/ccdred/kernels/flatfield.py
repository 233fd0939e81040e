"""Division by a master flat, with its variance and flags, in one pass over the frame."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["divide_by_flat"]


@njit(cache=True, error_model="numpy")
def _divide(data, variance, dq, flat, flat_variance, flat_dq, min_flat, low_flag,
            has_variance, has_flat_variance, quotient, out_variance, out_dq):
    rows, cols = data.shape
    zero = np.float32(0)
    for r in range(rows):
        for c in range(cols):
            f = flat[r, c]
            low = not f >= min_flat
            q = data[r, c] / (np.float32(1) if low else f)
            quotient[r, c] = np.float32(np.nan) if low else q
            out_dq[r, c] = dq[r, c] | flat_dq[r, c] | (low_flag if low else np.uint16(0))
            if has_variance or has_flat_variance:
                # Frame.__truediv__'s float32 steps, in its order: var / f^2 + q^2 var_f / f^2.
                safe = np.float32(1) if low else f
                inv2 = np.float32(1) / (safe * safe)
                v = zero
                if has_flat_variance:
                    v = q * q * flat_variance[r, c] * inv2
                if has_variance:
                    v = v + inv2 * variance[r, c]
                out_variance[r, c] = np.float32(np.nan) if low else v


def divide_by_flat(data: np.ndarray, variance: np.ndarray | None, dq: np.ndarray,
                   flat: np.ndarray, flat_variance: np.ndarray | None, flat_dq: np.ndarray, *,
                   min_flat: float, low_flag: int) -> tuple[np.ndarray, np.ndarray | None,
                                                           np.ndarray]:
    """Return ``data / flat``, its variance and flags; NaN where the flat is below ``min_flat``.

    The values of `ccdred.frame.Frame`'s division (float32, step by step:
    ``var / f**2 + q**2 var_f / f**2``), computed in one pass with no temporaries. Where the
    flat is below ``min_flat`` or not finite, the quotient and variance are NaN and
    ``low_flag`` is set.

    Parameters
    ----------
    data, variance, dq : ndarray (2-D)
        The frame: float32 values, their variance (or None) and uint16 flags.
    flat, flat_variance, flat_dq : ndarray (2-D)
        The master flat, the same way.
    min_flat : float
        Positive.
    low_flag : int
        The flag bit set where the flat is too low.

    Returns
    -------
    quotient : ndarray of float32
    variance : ndarray of float32, or None when neither input has one
    dq : ndarray of uint16

    Raises
    ------
    ValueError
        The arrays differ in shape, or the values and variances are not float32 (the
        division is float32 throughout; other types would change its values).
    """
    has_variance, has_flat_variance = variance is not None, flat_variance is not None
    arrays = {"data": data, "variance": variance, "dq": dq, "flat": flat,
              "flat variance": flat_variance, "flat dq": flat_dq}
    for name, array in arrays.items():
        if array is None:
            continue
        if np.shape(array) != np.shape(data) or np.ndim(array) != 2:
            raise ValueError(f"{name} has shape {np.shape(array)}; data {np.shape(data)}")
        if "dq" not in name and array.dtype != np.float32:
            raise ValueError(f"{name} is {array.dtype}, not float32")
    dummy = np.zeros((1, 1), np.float32)
    variance = dummy if variance is None else np.asarray(variance, np.float32)
    flat_variance = dummy if flat_variance is None else np.asarray(flat_variance, np.float32)
    # Outputs allocated by numpy, which asks for huge pages (fewer page faults to fill them).
    quotient = np.empty(np.shape(data), np.float32)
    out_variance = np.empty(np.shape(data) if has_variance or has_flat_variance else (1, 1),
                            np.float32)
    out_dq = np.empty(np.shape(data), np.uint16)
    _divide(np.asarray(data, np.float32), variance, np.asarray(dq, np.uint16),
            np.asarray(flat, np.float32), flat_variance, np.asarray(flat_dq, np.uint16),
            np.float32(min_flat), np.uint16(low_flag), has_variance, has_flat_variance,
            quotient, out_variance, out_dq)
    return quotient, out_variance if has_variance or has_flat_variance else None, out_dq
