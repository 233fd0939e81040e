"""Separable median filters (rows, then columns) as branch-free selection networks.

The networks are astroscrappy's ``PyOptMed3/5/7/9``; the compiler vectorises them over a row.
L.A.Cosmic's separable medians (``sepmed=True``) are these filters.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["separable_median"]


@njit(inline="always")
def _sort(a, b):
    return (a if a < b else b), (b if a < b else a)


@njit(inline="always")
def _med3(a, b, c):
    a, b = _sort(a, b)
    b, c = _sort(b, c)
    a, b = _sort(a, b)
    return b


@njit(inline="always")
def _med5(p0, p1, p2, p3, p4):
    p0, p1 = _sort(p0, p1)
    p3, p4 = _sort(p3, p4)
    p0, p3 = _sort(p0, p3)
    p1, p4 = _sort(p1, p4)
    p1, p2 = _sort(p1, p2)
    p2, p3 = _sort(p2, p3)
    p1, p2 = _sort(p1, p2)
    return p2


@njit(inline="always")
def _med7(p0, p1, p2, p3, p4, p5, p6):
    p0, p5 = _sort(p0, p5)
    p0, p3 = _sort(p0, p3)
    p1, p6 = _sort(p1, p6)
    p2, p4 = _sort(p2, p4)
    p0, p1 = _sort(p0, p1)
    p3, p5 = _sort(p3, p5)
    p2, p6 = _sort(p2, p6)
    p2, p3 = _sort(p2, p3)
    p3, p6 = _sort(p3, p6)
    p4, p5 = _sort(p4, p5)
    p1, p4 = _sort(p1, p4)
    p1, p3 = _sort(p1, p3)
    p3, p4 = _sort(p3, p4)
    return p3


@njit(inline="always")
def _med9(p0, p1, p2, p3, p4, p5, p6, p7, p8):
    p1, p2 = _sort(p1, p2)
    p4, p5 = _sort(p4, p5)
    p7, p8 = _sort(p7, p8)
    p0, p1 = _sort(p0, p1)
    p3, p4 = _sort(p3, p4)
    p6, p7 = _sort(p6, p7)
    p1, p2 = _sort(p1, p2)
    p4, p5 = _sort(p4, p5)
    p7, p8 = _sort(p7, p8)
    p0, p3 = _sort(p0, p3)
    p5, p8 = _sort(p5, p8)
    p4, p7 = _sort(p4, p7)
    p3, p6 = _sort(p3, p6)
    p1, p4 = _sort(p1, p4)
    p2, p5 = _sort(p2, p5)
    p4, p7 = _sort(p4, p7)
    p4, p2 = _sort(p4, p2)
    p6, p4 = _sort(p6, p4)
    p4, p2 = _sort(p4, p2)
    return p4


@njit(cache=True, parallel=True)
def _median_of_rows(x, out, half):
    """Median of each pixel's ``2 * half + 1`` row neighbours (left alone near the ends).

    One loop per width, with the width decided outside it, so each loop vectorises.
    """
    rows, cols = x.shape
    for r in prange(rows):
        a = x[r]
        o = out[r]
        o[:half] = a[:half]
        o[cols - half:] = a[cols - half:]
        if half == 2:
            for c in range(2, cols - 2):
                o[c] = _med5(a[c - 2], a[c - 1], a[c], a[c + 1], a[c + 2])
        elif half == 3:
            for c in range(3, cols - 3):
                o[c] = _med7(a[c - 3], a[c - 2], a[c - 1], a[c], a[c + 1], a[c + 2], a[c + 3])
        else:
            for c in range(4, cols - 4):
                o[c] = _med9(a[c - 4], a[c - 3], a[c - 2], a[c - 1], a[c], a[c + 1], a[c + 2],
                             a[c + 3], a[c + 4])


@njit(cache=True, parallel=True)
def _median_of_columns(x, border, out, half):
    """Median of each pixel's ``2 * half + 1`` column neighbours; ``border`` near the edges."""
    rows, cols = x.shape
    for r in prange(rows):
        o = out[r]
        if r < half or r >= rows - half:
            o[:] = border[r]
            continue
        o[:half] = border[r, :half]
        o[cols - half:] = border[r, cols - half:]
        if half == 2:
            a0, a1, a2, a3, a4 = x[r - 2], x[r - 1], x[r], x[r + 1], x[r + 2]
            for c in range(2, cols - 2):
                o[c] = _med5(a0[c], a1[c], a2[c], a3[c], a4[c])
        elif half == 3:
            a0, a1, a2, a3 = x[r - 3], x[r - 2], x[r - 1], x[r]
            a4, a5, a6 = x[r + 1], x[r + 2], x[r + 3]
            for c in range(3, cols - 3):
                o[c] = _med7(a0[c], a1[c], a2[c], a3[c], a4[c], a5[c], a6[c])
        else:
            a0, a1, a2, a3, a4 = x[r - 4], x[r - 3], x[r - 2], x[r - 1], x[r]
            a5, a6, a7, a8 = x[r + 1], x[r + 2], x[r + 3], x[r + 4]
            for c in range(4, cols - 4):
                o[c] = _med9(a0[c], a1[c], a2[c], a3[c], a4[c], a5[c], a6[c], a7[c], a8[c])


def separable_median(x, half):
    """Median-filter rows, then columns, border copied (astroscrappy's ``sepmedfilt``).

    ``half`` is 2, 3 or 4 (5, 7 or 9 pixels).
    """
    along_rows = np.empty_like(x)
    _median_of_rows(x, along_rows, half)
    out = np.empty_like(x)
    _median_of_columns(along_rows, x, out, half)
    return out
