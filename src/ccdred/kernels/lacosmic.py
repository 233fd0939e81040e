"""L.A.Cosmic (van Dokkum 2001) as compiled, vectorised kernels.

This is astroscrappy's ``detect_cosmics`` with ``sepmed=True, fsmode="median",
cleantype="meanmask"`` (the variant ccdred and ccdproc use), computed the same way in float32
so that it finds the same pixels (the tests compare them), but faster in two ways:

- The separable median filters are branch-free selection networks (the same networks as
  astroscrappy's ``PyOptMed``), which the compiler vectorises over a row.
- After the first iteration only the neighbourhood of the pixels the cleaning changed is
  recomputed. Every quantity L.A.Cosmic derives at a pixel depends on the cleaned image within
  ``_REACH`` pixels, so a pixel farther than that from any change gives the same answer as in
  the previous iteration; recomputing it, as astroscrappy does, repeats work exactly.

`detect_cosmics` is pure (arrays in, new arrays out); it cleans its own copies in place.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from .filters import grow_mask
from .sepmed import separable_median as _separable_median

__all__ = ["detect_cosmics"]

# How far a change in the cleaned image can move the detection: the noise median (3), the
# median of the Laplacian-to-noise image (3) and the two 3x3 growth steps (1 + 1). The fine
# structure (5x5 then 9x9 median: 2 + 4) stays within the first 6.
_REACH = 8
# Rows and columns per block of the incremental iterations.
_BLOCK = 32
# Windows covering more than this fraction of the image (halo included): one full pass instead.
_FULL_PASS_AREA = 0.6

_F32 = np.float32
_MIN_VARIANCE = _F32(0.00001)
_MIN_FINE_STRUCTURE = _F32(0.01)


@njit(inline="always")
def _clipped_laplacian(v, a, b, c, d):
    value = np.float32(4.0 * v - a - b - c - d)
    return value if value > 0 else np.float32(0.0)


@njit(cache=True, parallel=True)
def _laplacian_to_noise(clean, noise):
    """Subsample, Laplacian, clip at zero, rebin, divide by 2 * noise (as astroscrappy).

    Each pixel is four pixels of the 2x subsampled image. Their Laplacians are summed in double
    precision and rounded once: astroscrappy's build (``-ffast-math``) rounds in an order of
    the compiler's choosing, so its last bit can differ by one unit.
    """
    rows, cols = clean.shape
    out = np.empty_like(clean)
    for r in prange(rows):
        for c in range(cols):
            v = np.float64(clean[r, c])
            up = np.float64(clean[r - 1, c]) if r > 0 else 0.0
            down = np.float64(clean[r + 1, c]) if r < rows - 1 else 0.0
            left = np.float64(clean[r, c - 1]) if c > 0 else 0.0
            right = np.float64(clean[r, c + 1]) if c < cols - 1 else 0.0
            # Sub-pixels top-left, bottom-left, bottom-right, top-right.
            total = (np.float64(_clipped_laplacian(v, v, left, v, up))
                     + np.float64(_clipped_laplacian(v, v, left, down, v))
                     + np.float64(_clipped_laplacian(v, right, v, down, v))
                     + np.float64(_clipped_laplacian(v, right, v, v, up)))
            out[r, c] = np.float32(total / 4.0) / (np.float32(2.0) * noise[r, c])
    return out


@njit(cache=True, parallel=True)
def _noise(variance_median):
    out = np.empty_like(variance_median)
    rows, cols = out.shape
    for r in prange(rows):
        for c in range(cols):
            v = variance_median[r, c]
            out[r, c] = np.sqrt(v if not v < _MIN_VARIANCE else _MIN_VARIANCE)
    return out


@njit(cache=True, parallel=True)
def _candidates(s, s_median, fine, fine_median, noise, good, sigclip, objlim):
    """Laplacian-to-noise above ``sigclip`` and sharper than the fine structure by ``objlim``."""
    rows, cols = s.shape
    sharp = np.empty_like(s)
    found = np.zeros(s.shape, np.bool_)
    for r in prange(rows):
        for c in range(cols):
            sp = s[r, c] - s_median[r, c]
            sharp[r, c] = sp
            structure = (fine[r, c] - fine_median[r, c]) / noise[r, c]
            if structure < _MIN_FINE_STRUCTURE:
                structure = _MIN_FINE_STRUCTURE
            found[r, c] = sp > sigclip and good[r, c] and sp / structure > objlim
    return sharp, found


@njit(cache=True, parallel=True)
def _grow(seed, sharp, good, limit):
    """3x3 dilation (border copied, as astroscrappy's dilate3), kept where good and sharp.

    The interior is written with bitwise, not short-circuit, operators so that it vectorises.
    """
    rows, cols = seed.shape
    out = np.empty_like(seed)
    for r in prange(rows):
        o = out[r]
        if r == 0 or r == rows - 1:
            for c in range(cols):
                o[c] = seed[r, c] & good[r, c] & (sharp[r, c] > limit)
            continue
        up, mid, down, g, sh = seed[r - 1], seed[r], seed[r + 1], good[r], sharp[r]
        for c in (0, cols - 1):
            o[c] = mid[c] & g[c] & (sh[c] > limit)
        for c in range(1, cols - 1):
            hit = (up[c - 1] | up[c] | up[c + 1] | mid[c - 1] | mid[c] | mid[c + 1]
                   | down[c - 1] | down[c] | down[c + 1])
            o[c] = hit & g[c] & (sh[c] > limit)
    return out


def _detect(clean, variance, good, sigclip, sigcliplow, objlim):
    """One L.A.Cosmic detection over a whole (sub)image."""
    noise = _noise(_separable_median(variance, 3))
    s = _laplacian_to_noise(clean, noise)
    fine = _separable_median(clean, 2)
    sharp, found = _candidates(s, _separable_median(s, 3), fine, _separable_median(fine, 4),
                               noise, good, sigclip, objlim)
    return _grow(_grow(found, sharp, good, sigclip), sharp, good, sigcliplow)


@njit(cache=True, parallel=True)
def _meanmask_values(image, rs, cs, crmask, mask):
    """Mean of the good pixels in each listed pixel's 5x5 box; ``starved`` where none is good."""
    n = rs.size
    values = np.empty(n, np.float32)
    starved = np.zeros(n, np.bool_)
    for i in prange(n):
        r, c = rs[i], cs[i]
        total = _F32(0.0)
        count = 0
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                if not (crmask[r + dr, c + dc] or mask[r + dr, c + dc]):
                    total = total + image[r + dr, c + dc]
                    count += 1
        starved[i] = count == 0
        values[i] = total / _F32(count) if count > 0 else _F32(0.0)
    return values, starved


@njit(cache=True)
def _put(image, rs, cs, values):
    """Write ``values`` at the listed pixels; return which of them changed."""
    changed = np.zeros(rs.size, np.bool_)
    for i in range(rs.size):
        if values[i] != image[rs[i], cs[i]]:
            image[rs[i], cs[i]] = values[i]
            changed[i] = True
    return changed


def _clean_meanmask(image, crmask, mask, background):
    """Replace, IN PLACE, every cosmic-ray pixel by the mean of the good pixels of its 5x5 box.

    Pixels in the 2-pixel border are left alone; a box with no good pixel gets ``background()``
    (a callable, evaluated only then), as in astroscrappy. Only cosmic-ray pixels are written and
    they are never read as neighbours, so the result is the same as from a copy.
    Returns the (row, column) coordinates of the pixels whose value changed.
    """
    rows, cols = image.shape
    rs, cs = np.divmod(np.flatnonzero(crmask), cols)  # far faster than 2-D nonzero
    inside = (rs >= 2) & (rs < rows - 2) & (cs >= 2) & (cs < cols - 2)
    rs, cs = rs[inside], cs[inside]
    values, starved = _meanmask_values(image, rs, cs, crmask, mask)
    if starved.any():
        values[starved] = background()
    changed = _put(image, rs, cs, values)
    return rs[changed], cs[changed]


def _dirty_runs(changed: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]
                ) -> list[tuple[int, int, int]]:
    """Find the blocks with a change (pixel coordinates ``changed``) within ``_REACH`` pixels.

    Returns runs of adjacent such blocks in one block row, as (block_row, first, stop).
    """
    rows, cols = shape
    nr, nc = -(-rows // _BLOCK), -(-cols // _BLOCK)
    has_change = np.zeros((nr, nc), bool)
    has_change[changed[0] // _BLOCK, changed[1] // _BLOCK] = True
    # _REACH < _BLOCK, so a change reaches at most the 8 neighbouring blocks.
    dirty = grow_mask(has_change, 1)
    runs = []
    for block_row, row in enumerate(dirty):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.int8), [0]))))
        runs.extend((block_row, int(a), int(b)) for a, b in zip(edges[::2], edges[1::2],
                                                                  strict=True))
    return runs


def _redetect(clean, variance, good, found, changed, thresholds):
    """Detect again where ``changed`` can alter the answer; return the new detection.

    Windows with their halo cost more per pixel than one pass over the image: when they would
    cover most of it (a long exposure's first cleaning touches nearly every block), the whole
    image is detected again instead.
    """
    rows, cols = clean.shape
    halo = _REACH
    runs = _dirty_runs(changed, (rows, cols))
    area = sum(min(_BLOCK + 2 * halo, rows) * min((stop - first) * _BLOCK + 2 * halo, cols)
               for _, first, stop in runs)
    if area > _FULL_PASS_AREA * rows * cols:
        return _detect(clean, variance, good, *thresholds)
    found = found.copy()
    for br, first, stop in runs:
        r0, r1 = br * _BLOCK, min(rows, (br + 1) * _BLOCK)
        c0, c1 = first * _BLOCK, min(cols, stop * _BLOCK)
        hr0, hr1 = max(0, r0 - halo), min(rows, r1 + halo)
        hc0, hc1 = max(0, c0 - halo), min(cols, c1 + halo)
        window = (slice(hr0, hr1), slice(hc0, hc1))
        local = _detect(np.ascontiguousarray(clean[window]),
                        np.ascontiguousarray(variance[window]),
                        np.ascontiguousarray(good[window]), *thresholds)
        found[r0:r1, c0:c1] = local[r0 - hr0:r1 - hr0, c0 - hc0:c1 - hc0]
    return found


def _lower_median(values: np.ndarray) -> np.float32:
    """Return the lower middle value (astroscrappy's ``PyMedian``)."""
    return np.partition(values, (values.size - 1) // 2)[(values.size - 1) // 2]


def _dilate3(mask: np.ndarray) -> np.ndarray:
    """Grow by one pixel, keeping the 1-pixel border as it was (astroscrappy's dilate3)."""
    out = grow_mask(mask, 1)
    out[[0, -1], :] = mask[[0, -1], :]
    out[:, [0, -1]] = mask[:, [0, -1]]
    return out


def _background_levels(data, invar, gain, readnoise, good):
    """Fill values for a hit with no good neighbour: the image's and variance's medians."""
    image = np.asarray(data, dtype=np.float32) * _F32(gain)
    variance = (image + _F32(readnoise * readnoise) if invar is None
                else np.asarray(invar, dtype=np.float32) * _F32(gain * gain))
    return _lower_median(image[good]), _lower_median(variance[good])


def detect_cosmics(data: np.ndarray, *, inmask: np.ndarray | None = None,
                   invar: np.ndarray | None = None, gain: float = 1.0,
                   readnoise: float = 6.5, sigclip: float = 4.5, sigfrac: float = 0.3,
                   objlim: float = 5.0, niter: int = 4, incremental: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Find cosmic rays with L.A.Cosmic.

    The same as astroscrappy's ``detect_cosmics`` with ``sepmed=True, fsmode="median",
    cleantype="meanmask", satlevel=inf``.

    Parameters
    ----------
    data : ndarray
        Image in ADU, sky included (the noise model needs it).
    inmask : ndarray of bool, optional
        Pixels to ignore; grown by one pixel, as astroscrappy does.
    invar : ndarray, optional
        Variance in ADU^2, used instead of the model ``data * gain + readnoise**2``.
    gain, readnoise : float
        Electrons per ADU and read noise in electrons.
    sigclip, sigfrac, objlim : float
        Laplacian-to-noise limit, its fraction for neighbouring pixels, and the contrast
        limit against the fine structure of stars.
    niter : int
        Maximum iterations of detection and cleaning.
    incremental : bool
        Recompute only around what the cleaning changed (the same answer, faster). False
        recomputes every iteration over the whole image, for tests.

    Returns
    -------
    crmask : ndarray of bool
        The cosmic-ray pixels.
    cleaned : ndarray of float32
        ``data`` with those pixels replaced by the mean of their good 5x5 neighbours.
    """
    if niter < 1:
        raise ValueError(f"niter must be >= 1, got {niter}")
    clean = np.ascontiguousarray(data, dtype=np.float32) * _F32(gain)
    if invar is None:
        variance = clean + _F32(readnoise * readnoise)
    else:
        variance = np.ascontiguousarray(invar, dtype=np.float32) * _F32(gain * gain)
    mask = (np.zeros(clean.shape, bool) if inmask is None
            else _dilate3(np.ascontiguousarray(inmask, dtype=bool)))
    good = ~mask
    thresholds = (_F32(sigclip), _F32(_F32(sigfrac) * _F32(sigclip)), _F32(objlim))
    levels = functools.cache(lambda: _background_levels(data, invar, gain, readnoise, good))

    crmask = np.zeros(clean.shape, bool)
    found = _detect(clean, variance, good, *thresholds)
    for iteration in range(niter):
        if not found.any():
            break
        crmask |= found
        # clean and variance are this function's own arrays: cleaned in place. The background
        # levels (medians of the whole image) are computed only if a box has no good pixel.
        changed = _clean_meanmask(clean, crmask, mask, lambda: levels()[0])
        changed_variance = _clean_meanmask(variance, crmask, mask, lambda: levels()[1])
        if iteration + 1 == niter:
            break
        if incremental:
            either = (np.concatenate((changed[0], changed_variance[0])),
                      np.concatenate((changed[1], changed_variance[1])))
            found = _redetect(clean, variance, good, found, either, thresholds)
        else:
            found = _detect(clean, variance, good, *thresholds)
    return crmask, clean / _F32(gain)
