"""The camera's numbers: gain, read noise and the raw saturation level of a readout setup.

Gain and read noise come from the options, the headers, or are measured from the frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..frame import Frame
from ..geometry import readout_geometry
from ..inventory import FrameInfo
from ..kernels.noise import gain_from_flats, read_noise_adu
from ..steps.overscan import apply_geometry
from .options import ReduceOptions

__all__ = ["NoiseModel", "noise_model", "measure_read_noise", "read_noise_cards",
           "saturation_level", "NOISE_OPTIONS", "READ_NOISE_AGREEMENT"]

NOISE_OPTIONS = ("gain", "read_noise", "sources", "overscan")
"""The `ReduceOptions` fields a noise model depends on."""

READ_NOISE_AGREEMENT = (0.8, 1.25)
"""Measured/header read-noise ratios within which the header's value is trusted."""


@dataclass(frozen=True)
class NoiseModel:
    """Gain (e-/ADU) and read noise (e-) of a readout setup, and where each came from."""

    gain: float
    gain_source: str
    read_noise: float
    read_noise_source: str


def noise_model(group: Sequence[FrameInfo], bias: Frame | None, options: ReduceOptions
                ) -> NoiseModel:
    """Gain and read noise of one setup's frames: option, header, measured, or assumed.

    Parameters
    ----------
    group : sequence of FrameInfo
        The setup's raw frames (its biases, darks and flats are measured when needed).
    bias : Frame, optional
        The setup's master bias (its own, or borrowed from the library).
    options : ReduceOptions
        ``gain`` and ``read_noise`` override everything; ``sources`` says where they came from.
    """
    gain, gain_source = _header_value(group, "gain", options.gain,
                                      options.sources.get("gain", "command line"))
    rn, rn_source = _header_value(group, "read_noise", options.read_noise,
                                  options.sources.get("read_noise", "command line"))
    rn_adu, rn_from = (None, "") if options.read_noise is not None else measure_read_noise(
        group, options)
    if rn_adu is None and options.read_noise is None and bias is not None and (
            "RNADU" in bias.header):
        # A night without biases takes the read noise its library master bias measured.
        rn_adu, rn_from = float(bias.header["RNADU"]), "2 biases (of the library bias)"
    if gain is None:
        gain, gain_source = _measure_gain(group, bias, rn_adu, options)
    rn, rn_source = _settle_read_noise(rn, rn_source, rn_adu, rn_from, gain)
    return NoiseModel(gain, gain_source, rn, rn_source)


def _settle_read_noise(rn: float | None, source: str, rn_adu: float | None, rn_from: str,
                       gain: float) -> tuple[float, str]:
    """Return the read noise to use: the given one unless the biases contradict it."""
    if rn is not None and rn_adu is not None and rn_from.startswith("2 biases"):
        ratio = rn_adu * gain / rn
        if not READ_NOISE_AGREEMENT[0] <= ratio <= READ_NOISE_AGREEMENT[1]:
            # The data's own noise wins: a noise model that is off by a factor flags noise as
            # cosmic rays and misstates every uncertainty.
            return rn_adu * gain, (f"measured from {rn_from} ({rn_adu:.2f} ADU); the {source} "
                                   f"value {rn:.3g} e- is {ratio:.2f}x off")
    if rn is not None:
        return rn, source
    if rn_adu is not None:
        return rn_adu * gain, f"measured from {rn_from} ({rn_adu:.2f} ADU)"
    return 0.0, "unknown (no keyword, no pair of biases or darks): 0"


def read_noise_cards(inputs: Sequence[FrameInfo], options: ReduceOptions) -> dict[str, tuple]:
    """Header cards recording the read noise a master bias's raw frames show (for borrowers)."""
    rn_adu, rn_from = measure_read_noise(inputs, options)
    if rn_from != "2 biases":
        return {}
    return {"RNADU": (round(rn_adu, 4), "[adu] read noise from 2 raw biases")}


def measure_read_noise(group: Sequence[FrameInfo], options: ReduceOptions
                       ) -> tuple[float | None, str]:
    """Measure read noise in ADU from two biases, else from two darks of one exposure.

    Two darks give an upper limit: their difference also holds the dark current's shot noise.
    """
    biases = [i.path for i in group if i.kind == "bias"]
    if len(biases) >= 2:
        first, second = (_read_trimmed(path, options).data for path in biases[:2])
        return read_noise_adu(first, second), "2 biases"
    darks: dict[float, list[Path]] = {}
    for info in group:
        if info.kind == "dark" and info.exptime is not None:
            darks.setdefault(round(info.exptime, 2), []).append(info.path)
    pairs = [paths for _, paths in sorted(darks.items()) if len(paths) >= 2]
    if pairs:
        first, second = pairs[0][:2]
        value = read_noise_adu(_read_trimmed(first, options).data,
                               _read_trimmed(second, options).data)
        return value, "2 darks, upper limit"
    return None, ""


def _header_value(group: Sequence[FrameInfo], attr: str, override: float | None,
                  override_source: str) -> tuple[float | None, str]:
    if override is not None:
        return override, override_source
    values = {getattr(i, attr) for i in group if getattr(i, attr) is not None}
    if len(values) == 1:
        return values.pop(), "header"
    if len(values) > 1:
        return float(np.median(sorted(values))), f"header (median of {len(values)} values)"
    return None, ""


def _read_trimmed(path: Path, options: ReduceOptions) -> Frame:
    """Read a raw frame, its overscan subtracted and trimmed as the masters were made."""
    frame = io.read(path)
    if options.overscan is None:
        return frame
    return apply_geometry(frame, readout_geometry(frame.header, frame.shape),
                          model=options.overscan)


def _measure_gain(group: Sequence[FrameInfo], bias: Frame | None, rn_adu: float | None,
                  options: ReduceOptions) -> tuple[float, str]:
    flats = [i for i in group if i.kind == "flat"]
    if bias is None or len(flats) < 2:
        return 1.0, "assumed 1.0 (no keyword; measuring needs a master bias and 2 flats)"
    by_filter: dict[str, list[FrameInfo]] = {}
    for info in flats:
        by_filter.setdefault(info.filter or "", []).append(info)
    pair = max(by_filter.values(), key=len)
    if len(pair) < 2:
        return 1.0, "assumed 1.0 (no keyword; no two flats of one filter to measure it)"
    f1, f2 = (_read_trimmed(info.path, options).data for info in pair[:2])
    read_noise = rn_adu if rn_adu is not None else 0.0
    gain = gain_from_flats(f1, f2, bias.data, read_noise)
    if not np.isfinite(gain) or gain <= 0:
        return 1.0, "assumed 1.0 (photon-transfer measurement failed)"
    return gain, f"measured by photon transfer ({pair[0].path.name}, {pair[1].path.name})"


def saturation_level(info: FrameInfo, override: float | None) -> float | None:
    """Raw saturation: ``override``, else SATURATE/DATAMAX, else the ADC's largest value."""
    if override is not None:
        return override
    if info.saturation is not None:
        return info.saturation
    if info.bitpix and info.bitpix > 0:
        bzero = info.bzero or 0.0
        return float(2 ** (info.bitpix - 1) - 1 + bzero)
    return None
