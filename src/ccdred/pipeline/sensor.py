"""What a readout setup's raw values show about its ADC: the code step and the saturation level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..inventory import FrameInfo
from ..io import FileRows
from ..kernels.adc import grid_step, saturation_from_values

__all__ = ["Sensor", "analyse_sensor", "SAMPLE_FRAMES"]

SAMPLE_FRAMES = 3
"""Raw frames of a setup read to find its ADC step and saturation (science frames first)."""


@dataclass(frozen=True)
class Sensor:
    """A setup's ADC as its raw values show it.

    ``step`` is the ADU one ADC code is written as (16 for a 12-bit ADC in 16-bit files);
    ``saturation`` the raw level at and above which values are saturated (None when it
    cannot be told, e.g. floating-point data); ``source`` says where each came from.
    """

    step: int = 1
    saturation: float | None = None
    source: str = ""

    @property
    def quantisation_variance(self) -> float:
        """Variance of the rounding to the ADC's codes (ADU^2): ``step**2 / 12``."""
        return self.step**2 / 12.0 if self.step > 1 else 0.0


def analyse_sensor(group: Sequence[FrameInfo], saturation_option: float | None) -> Sensor:
    """Find a setup's ADC step and saturation from its frames' raw values and headers.

    Saturation, in order: the option; SATURATE/DATAMAX; a pile-up of saturated values just
    below the ADC's full scale in the sampled frames; the ADC's full scale (its largest code,
    ``2**bits - 1``, times the step) for integer data.
    """
    frames = _samples(group)
    if not frames:
        return Sensor(1, saturation_option, "no frame to read")
    step, values = _step_and_top_values(frames)
    full = _full_scale(frames[0], step)
    if saturation_option is not None:
        return Sensor(step, saturation_option, _step_text(step) + "; saturation from the option")
    header = frames[0].saturation
    if header is not None:
        return Sensor(step, header, _step_text(step) + "; saturation from the header")
    if full is None:
        return Sensor(step, None, _step_text(step) + "; floating-point data: saturation unknown")
    level = saturation_from_values(values, full, step)
    how = ("the values pile up there" if level < full else "the ADC's full scale")
    return Sensor(step, level, _step_text(step) + f"; saturation {level:g} ADU ({how})")


def _samples(group: Sequence[FrameInfo]) -> list[FrameInfo]:
    order = {"science": 0, "flat": 1, "dark": 2, "darkflat": 3, "bias": 4}
    usable = [i for i in group if i.ok]
    return sorted(usable, key=lambda i: (order.get(i.kind, 5), str(i.path)))[:SAMPLE_FRAMES]


def _step_and_top_values(frames: Sequence[FrameInfo]) -> tuple[int, np.ndarray]:
    """Return the grid step of the sampled frames' values, and their values near the top."""
    steps, tops = [], []
    for info in frames:
        with FileRows(info.path) as rows:
            data = rows.read_rows(0, rows.shape[0])
        steps.append(grid_step(data[::3, ::3]))  # odd strides: every colour plane alike
        finite = data[np.isfinite(data)]
        if finite.size:
            tops.append(finite[finite >= 0.9 * finite.max()])
    return min(steps), np.concatenate(tops) if tops else np.zeros(0)


def _full_scale(info: FrameInfo, step: int) -> float | None:
    """Return the largest value the ADC writes: its top code times the step (integer data only).

    The file's integer range is that of its BITPIX (8: 0 to 255, unsigned as FITS has it;
    16, 32, 64: signed), as BZERO and BSCALE turn it into values. A 16-bit file written by a
    12- or 14-bit ADC tops out at its largest code times the step.
    """
    if not info.bitpix or info.bitpix <= 0:
        return None
    low, high = (0, 255) if info.bitpix == 8 else (-(2 ** (info.bitpix - 1)),
                                                   2 ** (info.bitpix - 1) - 1)
    scale = info.bscale if info.bscale else 1.0
    zero = info.bzero or 0.0
    top = max(low * scale + zero, high * scale + zero)
    if info.bitpix == 16 and top == 65535 and info.adc_bits and 8 <= info.adc_bits < 16:
        return float((2**info.adc_bits - 1) * (2 ** (16 - info.adc_bits)))
    if step > 1 and scale == 1.0:
        return float((int(top + 1) // step - 1) * step)
    return float(top)


def _step_text(step: int) -> str:
    if step == 1:
        return "raw values on every ADU"
    bits = 16 - int(np.log2(step))
    return f"raw values on a grid of {step} ADU ({bits}-bit ADC scaled into 16 bits)"
