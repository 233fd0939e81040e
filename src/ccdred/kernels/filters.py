"""Box median filters as selection networks the compiler vectorises over a row."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["median_filter", "grow_mask"]

# Devillard's median-of-25 network (also astroscrappy's PyOptMed25): after these
# compare-exchanges, element 12 is the median.
_MEDIAN_25 = np.array([
    (0, 1), (3, 4), (2, 4), (2, 3), (6, 7), (5, 7), (5, 6), (9, 10), (8, 10), (8, 9), (12, 13),
    (11, 13), (11, 12), (15, 16), (14, 16), (14, 15), (18, 19), (17, 19), (17, 18), (21, 22),
    (20, 22), (20, 21), (23, 24), (2, 5), (3, 6), (0, 6), (0, 3), (4, 7), (1, 7), (1, 4),
    (11, 14), (8, 14), (8, 11), (12, 15), (9, 15), (9, 12), (13, 16), (10, 16), (10, 13),
    (20, 23), (17, 23), (17, 20), (21, 24), (18, 24), (18, 21), (19, 22), (8, 17), (9, 18),
    (0, 18), (0, 9), (10, 19), (1, 19), (1, 10), (11, 20), (2, 20), (2, 11), (12, 21), (3, 21),
    (3, 12), (13, 22), (4, 22), (4, 13), (14, 23), (5, 23), (5, 14), (15, 24), (6, 24),
    (6, 15), (7, 16), (7, 19), (13, 21), (15, 23), (7, 13), (7, 15), (1, 9), (3, 11), (5, 17),
    (11, 17), (9, 17), (4, 10), (6, 12), (7, 14), (4, 6), (4, 7), (12, 14), (10, 14), (6, 7),
    (10, 12), (6, 10), (6, 17), (12, 17), (7, 17), (7, 10), (12, 18), (7, 12), (10, 18),
    (12, 20), (10, 20), (10, 12),
], dtype=np.int64)

# Paeth's median-of-9 network (Devillard's opt_med9): element 4 is the median.
_MEDIAN_9 = np.array([
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8),
    (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
], dtype=np.int64)


@njit(cache=True, parallel=True)
def _network_median(padded, pairs, half, middle):
    rows = padded.shape[0] - 2 * half
    cols = padded.shape[1] - 2 * half
    size = 2 * half + 1
    out = np.empty((rows, cols), padded.dtype)
    for r in prange(rows):
        values = np.empty((size * size, cols), padded.dtype)
        for dr in range(size):
            for dc in range(size):
                values[dr * size + dc] = padded[r + dr, dc:dc + cols]
        for k in range(pairs.shape[0]):
            a = values[pairs[k, 0]]
            b = values[pairs[k, 1]]
            for c in range(cols):
                lo = a[c] if a[c] < b[c] else b[c]
                hi = b[c] if a[c] < b[c] else a[c]
                a[c] = lo
                b[c] = hi
        out[r] = values[middle]
    return out


def median_filter(image: np.ndarray, size: int) -> np.ndarray:
    """Median of each ``size`` x ``size`` box, mirrored at the edges.

    The same values as ``scipy.ndimage.median_filter(image, size, mode="reflect")`` for an image
    without NaN; 3x3 and 5x5 boxes (the checks' and the defect search's) run as compiled
    networks, others in scipy. For a 3x3 box, mirrored is the same as the nearest edge pixel.
    """
    from scipy import ndimage  # loaded on first use: a quick start

    image = np.asarray(image, dtype=np.float32)
    networks = {3: (_MEDIAN_9, 4), 5: (_MEDIAN_25, 12)}
    if size not in networks:
        return ndimage.median_filter(image, size=size, mode="reflect")
    pairs, middle = networks[size]
    padded = np.pad(image, size // 2, mode="symmetric")
    return _network_median(padded, pairs, size // 2, middle)


@njit(cache=True)
def _paint_squares(mask, radius, out):
    rows, cols = mask.shape
    for r in range(rows):
        for c in range(cols):
            if mask[r, c]:
                out[max(0, r - radius):min(rows, r + radius + 1),
                    max(0, c - radius):min(cols, c + radius + 1)] = True


def grow_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate ``mask`` by a square of ``2 * radius + 1`` pixels (nothing beyond the edges).

    The same as ``ndimage.binary_dilation`` with that square, but the time goes with the
    number of masked pixels, which is small for saturated stars or hot pixels.
    """
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    out = np.zeros_like(mask)
    _paint_squares(mask, radius, out)
    return out
