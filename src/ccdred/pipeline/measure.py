"""Noise measured from a night's raw frames: read noise, photon-transfer gain, sky noise."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..frame import Frame
from ..geometry import readout_geometry
from ..inventory import FrameInfo
from ..kernels.noise import gain_from_flats, read_noise_adu, sky_points
from ..steps.overscan import apply_geometry

__all__ = ["Measured", "measure_read_noise", "measure_gain", "measure_sky", "read_trimmed",
           "SKY_FRAMES"]

SKY_FRAMES = 3
"""Frames whose sky noise against level gives the gain when nothing else can."""


@dataclass(frozen=True)
class Measured:
    """A value measured from the frames, and how (empty ``how`` when nothing was measured)."""

    value: float | None = None
    how: str = ""


def read_trimmed(path: Path, overscan: str | None) -> Frame:
    """Read a raw frame, its overscan subtracted and trimmed as the masters were made."""
    frame = io.read(path)
    if overscan is None:
        return frame
    return apply_geometry(frame, readout_geometry(frame.header, frame.shape), model=overscan)


def measure_read_noise(group: Sequence[FrameInfo], overscan: str | None) -> Measured:
    """Read noise in ADU from two biases, else from two dark-flats or darks of one exposure.

    Two darks (or dark-flats) give an upper limit: their difference also holds the dark
    current's shot noise (small in the short exposures of dark-flats). A pair whose
    difference has no noise at all (the same data twice) measures nothing: the next pair
    is tried, and a read noise of 0 is never returned.
    """
    biases = [i for i in group if i.kind == "bias"]
    candidates = [(pair, "2 biases") for pair in _pairs(biases)]
    for kind in ("darkflat", "dark"):
        candidates += [(pair, f"2 {kind}s, upper limit")
                       for pair in _same_exposure_pairs([i for i in group if i.kind == kind])]
    identical = []
    for pair, how in candidates[:MAX_PAIRS]:
        first, second = (read_trimmed(i.path, overscan).data for i in pair)
        value = read_noise_adu(first, second)
        if math.isfinite(value) and value > 0:
            return Measured(value, how)
        identical.append(" and ".join(i.path.name for i in pair))
    if identical:
        return Measured(None, f"no noise between {'; '.join(identical)} (the same data "
                              f"twice?): not measured")
    return Measured()


MAX_PAIRS = 4
"""Pairs of frames tried for the read noise before giving up."""


def _pairs(frames: Sequence[FrameInfo]) -> list[list[FrameInfo]]:
    return [list(frames[i:i + 2]) for i in range(0, len(frames) - 1)]


def _same_exposure_pairs(frames: Sequence[FrameInfo]) -> list[list[FrameInfo]]:
    by_exposure: dict[float, list[FrameInfo]] = {}
    for info in sorted(frames, key=lambda i: (i.exptime or 0.0, str(i.path))):
        if info.exptime is not None:
            by_exposure.setdefault(round(info.exptime, 2), []).append(info)
    return [pair for _, members in sorted(by_exposure.items()) for pair in _pairs(members)]


def measure_gain(group: Sequence[FrameInfo], zero_for: Callable[[FrameInfo], Frame | None],
                 rn_adu: float | None, overscan: str | None) -> Measured:
    """Gain (e-/ADU) by photon transfer from two flats of one filter and their zero level.

    ``zero_for(flat)`` gives what the flat's pedestal and dark are removed with (master bias,
    plus its dark-flat or dark), or None when nothing can.
    """
    by_filter: dict[str, list[FrameInfo]] = {}
    for info in group:
        if info.kind == "flat":
            by_filter.setdefault(info.filter or "", []).append(info)
    if not by_filter:
        return Measured(None, "no flats")
    pair = max(by_filter.values(), key=len)[:2]
    if len(pair) < 2:
        return Measured(None, "no two flats of one filter")
    zero = zero_for(pair[0])
    if zero is None:
        return Measured(None, "no bias, dark-flat or dark for the flats' zero level")
    f1, f2 = (read_trimmed(info.path, overscan).data for info in pair)
    gain = gain_from_flats(f1, f2, zero.data, rn_adu or 0.0, cfa=pair[0].cfa)
    if not (gain > 0 and math.isfinite(gain)):
        return Measured(None, "the photon-transfer measurement failed")
    return Measured(gain, f"photon transfer ({pair[0].path.name}, {pair[1].path.name})")


def measure_sky(group: Sequence[FrameInfo], overscan: str | None
                ) -> tuple[list[tuple[float, float]], str]:
    """Return the sky's (level, variance) in a night's own frames (science first), and which."""
    for kind in ("science", "flat", "dark", "darkflat"):
        frames = sorted((i for i in group if i.kind == kind), key=lambda i: str(i.path))
        if frames:
            points = []
            for info in frames[:SKY_FRAMES]:
                points += sky_points(read_trimmed(info.path, overscan).data, info.cfa)
            planes = "colour plane" if frames[0].cfa else "frame"
            return points, f"{len(points)} {planes}s of {kind} frames"
    return [], ""
