"""L.A.Cosmic's detection stages, over a whole image or only over listed row spans.

A detection is a chain of stages, each an image computed from the previous ones:

========  ===================================================  ======  =====
stage     value at a pixel                                      rows    cols
========  ===================================================  ======  =====
vrow      7-pixel median of the variance along the row          0       3
noise     sqrt of the 7-pixel column median of vrow             3       3
s         Laplacian of the image over 2 * noise                 3       3
srow      7-pixel row median of s                               3       6
frow      5-pixel row median of the image                       0       2
fine      5-pixel column median of frow                         2       2
ffrow     9-pixel row median of fine                            2       6
cand      sharp = s - column median of srow; candidate test     6       6
grown     cand grown by one pixel where sharp > sigclip         7       7
found     grown grown by one pixel where sharp > sigfrac *...   8       8
========  ===================================================  ======  =====

The last two columns are how far (rows, columns) a change of the image or the variance can
move the stage's value. The whole-image kernels compute each stage once (the separable medians
are astroscrappy's, rows then columns, borders copied from the filter's input). After a cleaning
changes a few pixels, `update` recomputes each stage only within its reach of them, reading the
earlier stages' images, which it has updated first: the same values as a whole new detection,
computed by the same expressions, at a small fraction of the cost.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .sepmed import med5, med7, med9

__all__ = ["Stages", "detect", "update", "REACH"]

REACH = 8
"""How far (rows and columns) a change of the image can move the detection."""

_F32 = np.float32
_MIN_VARIANCE = _F32(0.00001)
_MIN_FINE_STRUCTURE = _F32(0.01)


class Stages(NamedTuple):
    """Every stage's image of one detection (see the module's table); ``found`` is the answer."""

    vrow: np.ndarray
    noise: np.ndarray
    s: np.ndarray
    srow: np.ndarray
    frow: np.ndarray
    fine: np.ndarray
    ffrow: np.ndarray
    sharp: np.ndarray
    cand: np.ndarray
    grown: np.ndarray
    found: np.ndarray


# --- one pixel ----------------------------------------------------------------------------


@njit(inline="always")
def _clipped_laplacian(v, a, b, c, d):
    value = np.float32(4.0 * v - a - b - c - d)
    return value if value > 0 else np.float32(0.0)


@njit(inline="always")
def _laplacian(v, up, down, left, right, noise):
    """Subsample, Laplacian, clip at zero, rebin, divide by 2 * noise (as astroscrappy).

    ``up, down, left, right`` are the pixel's neighbours (0 beyond the image). Each pixel is
    four pixels of the 2x subsampled image. Their Laplacians are summed in double precision
    and rounded once: astroscrappy's build (``-ffast-math``) rounds in an order of the
    compiler's choosing, so its last bit can differ by one unit.
    """
    v, up, down = np.float64(v), np.float64(up), np.float64(down)
    left, right = np.float64(left), np.float64(right)
    # Sub-pixels top-left, bottom-left, bottom-right, top-right.
    total = (np.float64(_clipped_laplacian(v, v, left, v, up))
             + np.float64(_clipped_laplacian(v, v, left, down, v))
             + np.float64(_clipped_laplacian(v, right, v, down, v))
             + np.float64(_clipped_laplacian(v, right, v, v, up)))
    return np.float32(total / 4.0) / (np.float32(2.0) * noise)


@njit(inline="always")
def _noise_of(v):
    return np.sqrt(v if not v < _MIN_VARIANCE else _MIN_VARIANCE)


@njit(inline="always")
def _candidate(s, smed, fine, fmed, noise, good, sigclip, objlim):
    """Return ``(sharp, is_candidate)``.

    A candidate's Laplacian-to-noise is above ``sigclip`` and sharper than the fine structure
    by ``objlim``.
    """
    sp = s - smed
    structure = (fine - fmed) / noise
    structure = structure if not structure < _MIN_FINE_STRUCTURE else _MIN_FINE_STRUCTURE
    return sp, (sp > sigclip) & good & (sp / structure > objlim)


# --- one row segment: columns c0 to c1 of row r ------------------------------------------
# Each loop over the interior has no branch, so the compiler vectorises it.


@njit(inline="always")
def _copy_ends(source, o, half, c0, c1):
    """``o[c] = source[c]`` for the columns of [c0, c1) within ``half`` of an end."""
    cols = source.size
    for c in range(c0, min(c1, half)):
        o[c] = source[c]
    for c in range(max(c0, cols - half), c1):
        o[c] = source[c]


@njit(inline="always")
def _row_median(x, out, r, half, c0, c1):
    """Median of each pixel's ``2 * half + 1`` row neighbours; the pixel itself near the ends."""
    a, o = x[r], out[r]
    _copy_ends(a, o, half, c0, c1)
    lo, hi = max(c0, half), min(c1, a.size - half)
    if hi <= lo:
        return
    o = o[lo:hi]
    if half == 2:
        p0, p1, p2, p3, p4 = a[lo - 2:hi - 2], a[lo - 1:hi - 1], a[lo:hi], a[lo + 1:hi + 1], \
            a[lo + 2:hi + 2]
        for i in range(hi - lo):
            o[i] = med5(p0[i], p1[i], p2[i], p3[i], p4[i])
    elif half == 3:
        p0, p1, p2, p3 = a[lo - 3:hi - 3], a[lo - 2:hi - 2], a[lo - 1:hi - 1], a[lo:hi]
        p4, p5, p6 = a[lo + 1:hi + 1], a[lo + 2:hi + 2], a[lo + 3:hi + 3]
        for i in range(hi - lo):
            o[i] = med7(p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i])
    else:
        p0, p1, p2, p3 = a[lo - 4:hi - 4], a[lo - 3:hi - 3], a[lo - 2:hi - 2], a[lo - 1:hi - 1]
        p4, p5, p6, p7, p8 = a[lo:hi], a[lo + 1:hi + 1], a[lo + 2:hi + 2], a[lo + 3:hi + 3], \
            a[lo + 4:hi + 4]
        for i in range(hi - lo):
            o[i] = med9(p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i], p7[i], p8[i])


@njit(inline="always")
def _column_median(x, border, r, half, c0, c1, o):
    """Median of each pixel's ``2 * half + 1`` column neighbours of ``x`` into ``o``.

    ``o`` is indexed by column; ``border`` gives the values within ``half`` of an edge.
    """
    rows, cols = x.shape
    b = border[r]
    if r < half or r >= rows - half:
        for c in range(c0, c1):
            o[c] = b[c]
        return
    _copy_ends(b, o, half, c0, c1)
    lo, hi = max(c0, half), min(c1, cols - half)
    if hi <= lo:
        return
    o = o[lo:hi]
    if half == 2:
        p0, p1, p2 = x[r - 2, lo:hi], x[r - 1, lo:hi], x[r, lo:hi]
        p3, p4 = x[r + 1, lo:hi], x[r + 2, lo:hi]
        for i in range(hi - lo):
            o[i] = med5(p0[i], p1[i], p2[i], p3[i], p4[i])
    elif half == 3:
        p0, p1, p2, p3 = x[r - 3, lo:hi], x[r - 2, lo:hi], x[r - 1, lo:hi], x[r, lo:hi]
        p4, p5, p6 = x[r + 1, lo:hi], x[r + 2, lo:hi], x[r + 3, lo:hi]
        for i in range(hi - lo):
            o[i] = med7(p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i])
    else:
        p0, p1, p2, p3 = x[r - 4, lo:hi], x[r - 3, lo:hi], x[r - 2, lo:hi], x[r - 1, lo:hi]
        p4, p5, p6, p7 = x[r, lo:hi], x[r + 1, lo:hi], x[r + 2, lo:hi], x[r + 3, lo:hi]
        p8 = x[r + 4, lo:hi]
        for i in range(hi - lo):
            o[i] = med9(p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i], p7[i], p8[i])


@njit(inline="always")
def _noise_and_laplacian(vrow, variance, clean, noise, s, r, c0, c1, zeros):
    """Noise (column median of vrow, square root), then s, which reads noise at its pixel only.

    ``zeros`` is a row of zeros: the neighbours beyond the top and bottom edges.
    """
    rows, cols = clean.shape
    n = noise[r]
    _column_median(vrow, variance, r, 3, c0, c1, n)
    seg = n[c0:c1]
    for i in range(c1 - c0):
        seg[i] = _noise_of(seg[i])
    x, o = clean[r], s[r]
    up = clean[r - 1] if r > 0 else zeros
    down = clean[r + 1] if r < rows - 1 else zeros
    lo, hi = max(c0, 1), min(c1, cols - 1)
    if hi > lo:
        xl, xc, xr = x[lo - 1:hi - 1], x[lo:hi], x[lo + 1:hi + 1]
        xu, xd, nn, oo = up[lo:hi], down[lo:hi], n[lo:hi], o[lo:hi]
        for i in range(hi - lo):
            oo[i] = _laplacian(xc[i], xu[i], xd[i], xl[i], xr[i], nn[i])
    for c in (0, cols - 1):
        if c0 <= c < c1:
            left = x[c - 1] if c > 0 else np.float32(0.0)
            right = x[c + 1] if c < cols - 1 else np.float32(0.0)
            o[c] = _laplacian(x[c], up[c], down[c], left, right, n[c])


@njit(inline="always")
def _candidates(s, srow, fine, ffrow, noise, good, sigclip, objlim, sharp, cand, r, c0, c1,
                smed, fmed):
    """Sharp and cand over a segment; ``smed`` and ``fmed`` are scratch rows."""
    _column_median(srow, s, r, 3, c0, c1, smed)
    _column_median(ffrow, fine, r, 4, c0, c1, fmed)
    sr, fr, nr, gr = s[r, c0:c1], fine[r, c0:c1], noise[r, c0:c1], good[r, c0:c1]
    shr, cr, sm, fm = sharp[r, c0:c1], cand[r, c0:c1], smed[c0:c1], fmed[c0:c1]
    for i in range(c1 - c0):
        shr[i], cr[i] = _candidate(sr[i], sm[i], fr[i], fm[i], nr[i], gr[i], sigclip, objlim)


@njit(inline="always")
def _grow(seed, sharp, good, limit, out, r, c0, c1):
    """3x3 dilation (border copied, as astroscrappy's dilate3), kept where good and sharp."""
    rows, cols = seed.shape
    mid, g, sh, o = seed[r], good[r], sharp[r], out[r]
    if r == 0 or r == rows - 1:
        for c in range(c0, c1):
            o[c] = mid[c] & g[c] & (sh[c] > limit)
        return
    lo, hi = max(c0, 1), min(c1, cols - 1)
    if hi > lo:
        u0, u1, u2 = seed[r - 1, lo - 1:hi - 1], seed[r - 1, lo:hi], seed[r - 1, lo + 1:hi + 1]
        m0, m1, m2 = mid[lo - 1:hi - 1], mid[lo:hi], mid[lo + 1:hi + 1]
        d0, d1, d2 = seed[r + 1, lo - 1:hi - 1], seed[r + 1, lo:hi], seed[r + 1, lo + 1:hi + 1]
        gg, ss, oo = g[lo:hi], sh[lo:hi], o[lo:hi]
        for i in range(hi - lo):
            hit = u0[i] | u1[i] | u2[i] | m0[i] | m1[i] | m2[i] | d0[i] | d1[i] | d2[i]
            oo[i] = hit & gg[i] & (ss[i] > limit)
    for c in (0, cols - 1):
        if c0 <= c < c1:
            o[c] = mid[c] & g[c] & (sh[c] > limit)


# --- stages over spans: (ptr, first, stop), row r's spans first[ptr[r]:ptr[r + 1]] ... ---


@njit(cache=True, parallel=True, error_model="numpy")
def _rows_median_over(x, out, half, ptr, first, stop):
    for r in prange(x.shape[0]):
        for k in range(ptr[r], ptr[r + 1]):
            _row_median(x, out, r, half, first[k], stop[k])


@njit(cache=True, parallel=True, error_model="numpy")
def _columns_median_over(x, border, out, half, ptr, first, stop):
    for r in prange(x.shape[0]):
        for k in range(ptr[r], ptr[r + 1]):
            _column_median(x, border, r, half, first[k], stop[k], out[r])


@njit(cache=True, parallel=True, error_model="numpy")
def _noise_and_laplacian_over(vrow, variance, clean, noise, s, ptr, first, stop):
    rows, cols = clean.shape
    for r in prange(rows):
        if ptr[r + 1] > ptr[r]:
            zeros = np.zeros(cols, clean.dtype)
            for k in range(ptr[r], ptr[r + 1]):
                _noise_and_laplacian(vrow, variance, clean, noise, s, r, first[k], stop[k],
                                     zeros)


@njit(cache=True, parallel=True, error_model="numpy")
def _candidates_over(s, srow, fine, ffrow, noise, good, sigclip, objlim, sharp, cand,
                     ptr, first, stop):
    rows, cols = s.shape
    for r in prange(rows):
        if ptr[r + 1] > ptr[r]:
            smed = np.empty(cols, s.dtype)
            fmed = np.empty(cols, s.dtype)
            for k in range(ptr[r], ptr[r + 1]):
                _candidates(s, srow, fine, ffrow, noise, good, sigclip, objlim, sharp, cand, r,
                            first[k], stop[k], smed, fmed)


@njit(cache=True, parallel=True, error_model="numpy")
def _grow_over(seed, sharp, good, limit, out, ptr, first, stop):
    for r in prange(seed.shape[0]):
        for k in range(ptr[r], ptr[r + 1]):
            _grow(seed, sharp, good, limit, out, r, first[k], stop[k])


def _run_stages(st: Stages, clean, variance, good, sigclip, sigcliplow, objlim, spans_of):
    """Every stage in order, each over ``spans_of(rows_reach, cols_reach)``."""
    _rows_median_over(variance, st.vrow, 3, *spans_of(0, 3))
    _noise_and_laplacian_over(st.vrow, variance, clean, st.noise, st.s, *spans_of(3, 3))
    _rows_median_over(st.s, st.srow, 3, *spans_of(3, 6))
    _rows_median_over(clean, st.frow, 2, *spans_of(0, 2))
    _columns_median_over(st.frow, clean, st.fine, 2, *spans_of(2, 2))
    _rows_median_over(st.fine, st.ffrow, 4, *spans_of(2, 6))
    _candidates_over(st.s, st.srow, st.fine, st.ffrow, st.noise, good, sigclip, objlim,
                     st.sharp, st.cand, *spans_of(6, 6))
    _grow_over(st.cand, st.sharp, good, sigclip, st.grown, *spans_of(7, 7))
    _grow_over(st.grown, st.sharp, good, sigcliplow, st.found, *spans_of(REACH, REACH))


def detect(clean, variance, good, sigclip, sigcliplow, objlim) -> Stages:
    """One L.A.Cosmic detection over the whole image, every stage kept for `update`.

    Parameters
    ----------
    clean, variance : ndarray of float32 (2-D, one shape)
        The image as cleaned so far, and each pixel's variance (astroscrappy's noise model).
    good : ndarray of bool
        Pixels that may be detected.
    sigclip, sigcliplow, objlim : float
        astroscrappy's limits: Laplacian-to-noise, its lower one, fine-structure contrast.

    Returns
    -------
    Stages
        Every intermediate image; ``found`` is the detection.
    """
    rows, cols = clean.shape
    st = Stages(*(np.empty_like(clean) for _ in range(8)),
                *(np.empty(clean.shape, np.bool_) for _ in range(3)))
    whole = (np.arange(rows + 1, dtype=np.int64), np.zeros(rows, np.int64),
             np.full(rows, cols, np.int64))
    _run_stages(st, clean, variance, good, sigclip, sigcliplow, objlim, lambda kr, kc: whole)
    return st


# --- listed spans ------------------------------------------------------------------------


@njit(cache=True)
def _spans(rr, cc, rows, cols, kr, kc):
    """Row spans within ``kr`` rows and ``kc`` columns of the pixels ``(rr, cc)``.

    ``rr`` is sorted. Returns ``(ptr, first, stop)``: row ``r``'s spans are
    ``first[ptr[r]:ptr[r + 1]]`` to ``stop[...]`` (exclusive), sorted and disjoint.
    """
    start_of = np.searchsorted(rr, np.arange(rows + 1))
    capacity = 0
    for r in range(rows):
        capacity += start_of[min(rows, r + kr + 1)] - start_of[max(0, r - kr)]
    ptr = np.zeros(rows + 1, np.int64)
    first = np.empty(capacity, np.int64)
    stop = np.empty(capacity, np.int64)
    k = 0
    for r in range(rows):
        lo, hi = start_of[max(0, r - kr)], start_of[min(rows, r + kr + 1)]
        if hi > lo:
            columns = np.sort(cc[lo:hi])
            a, b = max(0, columns[0] - kc), min(cols, columns[0] + kc + 1)
            for i in range(1, columns.size):
                a2, b2 = max(0, columns[i] - kc), min(cols, columns[i] + kc + 1)
                if a2 <= b:
                    b = max(b, b2)
                else:
                    first[k], stop[k] = a, b
                    k += 1
                    a, b = a2, b2
            first[k], stop[k] = a, b
            k += 1
        ptr[r + 1] = k
    return ptr, first[:k], stop[:k]


def update(st: Stages, clean, variance, good, changed_rows, changed_cols, sigclip, sigcliplow,
           objlim, *, max_fraction: float = 0.5) -> bool:
    """Bring ``st`` up to date, IN PLACE, after the pixels listed changed in clean or variance.

    Each stage is recomputed within its reach of a change (the module's table), nowhere else.
    ``changed_rows`` and ``changed_cols`` list the pixels, in any order; the other arguments
    are `detect`'s, after the change.

    Returns
    -------
    bool
        True when ``st`` now equals a new `detect`; False, having changed nothing, when the
        last stage's spans would cover over ``max_fraction`` of the image (detect instead).
    """
    rows, cols = clean.shape
    if changed_rows.size == 0:
        return True
    if np.any(changed_rows[1:] < changed_rows[:-1]):  # the spans are found by row
        order = np.argsort(changed_rows, kind="stable")
        changed_rows, changed_cols = changed_rows[order], changed_cols[order]
    near = functools.partial(_spans, changed_rows, changed_cols, rows, cols)
    last = near(REACH, REACH)
    if (last[2] - last[1]).sum() > max_fraction * rows * cols:
        return False
    _run_stages(st, clean, variance, good, sigclip, sigcliplow, objlim,
                lambda kr, kc: last if (kr, kc) == (REACH, REACH) else near(kr, kc))
    return True
