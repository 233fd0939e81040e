"""Medians of 5, 7 and 9 values as branch-free selection networks.

The networks are astroscrappy's ``PyOptMed5/7/9``; inlined in a loop over a row, the compiler
vectorises them. L.A.Cosmic's separable medians (``sepmed=True``, `lacosmic_stages`) are built
from them.
"""

from __future__ import annotations

from numba import njit

__all__ = ["med5", "med7", "med9"]


@njit(inline="always")
def _sort(a, b):
    return (a if a < b else b), (b if a < b else a)


@njit(inline="always")
def med5(p0, p1, p2, p3, p4):
    """Median of 5 values (astroscrappy's ``PyOptMed5``)."""
    p0, p1 = _sort(p0, p1)
    p3, p4 = _sort(p3, p4)
    p0, p3 = _sort(p0, p3)
    p1, p4 = _sort(p1, p4)
    p1, p2 = _sort(p1, p2)
    p2, p3 = _sort(p2, p3)
    p1, p2 = _sort(p1, p2)
    return p2


@njit(inline="always")
def med7(p0, p1, p2, p3, p4, p5, p6):
    """Median of 7 values (astroscrappy's ``PyOptMed7``)."""
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
def med9(p0, p1, p2, p3, p4, p5, p6, p7, p8):
    """Median of 9 values (astroscrappy's ``PyOptMed9``)."""
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
