"""The noise model of a readout setup: gain, read noise, quantisation, and where each came from.

Every gain used is in electrons per ADU *of the saved file*. It comes from the options, else
the header as the writing program means it (a gain setting is never taken for e-/ADU; an
``EGAIN`` per ADC code is divided by the ADC step), and is checked against photon transfer
from the night's flats where the night allows: a header value the data contradict is
overruled and said so. Without any usable value, the night's own frames give it (their sky
noise against their level), never a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..frame import Frame
from ..inventory import FrameInfo
from ..kernels.noise import fit_noise_line
from .measure import Measured, measure_gain, measure_read_noise, measure_sky
from .options import ReduceOptions
from .sensor import Sensor

__all__ = ["NoiseModel", "noise_model", "read_noise_cards", "NOISE_OPTIONS",
           "READ_NOISE_AGREEMENT", "GAIN_AGREEMENT", "PLAUSIBLE_GAIN"]

NOISE_OPTIONS = ("gain", "read_noise", "sources", "overscan")
"""The `ReduceOptions` fields a noise model depends on."""

READ_NOISE_AGREEMENT = (0.8, 1.25)
"""Measured/header read-noise ratios within which the header's value is trusted."""

GAIN_AGREEMENT = (0.8, 1.25)
"""Header/photon-transfer gain ratios within which the header's value is trusted."""

PLAUSIBLE_GAIN = (0.001, 100.0)
"""Electrons per saved ADU any camera can have (a 12-bit ADC at high gain in 16-bit files
reaches 0.002; a CCD rarely exceeds 20)."""


@dataclass(frozen=True)
class NoiseModel:
    """Gain (e-/ADU) and read noise (e-) of a readout setup, and where each came from.

    ``quantisation`` is the variance (ADU^2) the ADC's rounding adds; ``zero_level`` the raw
    level (ADU) at which photon noise vanishes, for frames with no bias or dark to say it
    (None when it is 0 or a master says it).
    """

    gain: float
    gain_source: str
    read_noise: float
    read_noise_source: str
    quantisation: float = 0.0
    zero_level: float | None = None


def noise_model(group: Sequence[FrameInfo], bias: Frame | None, options: ReduceOptions,
                sensor: Sensor | None = None,
                zero_for: Callable[[FrameInfo], Frame | None] | None = None, *,
                needs_zero: bool = False) -> NoiseModel:
    """Gain and read noise of one setup's frames, each checked against the data.

    Parameters
    ----------
    group : sequence of FrameInfo
        The setup's raw frames (biases, dark-flats, darks, flats and lights are measured).
    bias : Frame, optional
        The setup's master bias (its own, or borrowed from the library).
    options : ReduceOptions
        ``gain`` and ``read_noise`` override the headers; ``sources`` says where they came from.
    sensor : Sensor, optional
        The setup's ADC step (an ``EGAIN`` per ADC code is divided by it).
    zero_for : callable, optional
        ``zero_for(flat)``: the zero level of a flat (bias, dark-flat, dark), for photon transfer.
    needs_zero : bool
        The setup's frames have no bias or dark to say where photon noise starts: the sky
        noise of the frames gives that level (and the read noise, when nothing else does).
    """
    sensor = sensor or Sensor()
    rn_adu = _measured_read_noise(group, bias, options)
    gain, gain_source, points = _gain(group, options, sensor, zero_for, rn_adu.value)
    rn, rn_source = _read_noise(options, _header_value(group, "read_noise"), rn_adu, gain)
    model = NoiseModel(gain, gain_source, rn, rn_source, sensor.quantisation_variance)
    known = not rn_source.startswith("unknown")
    if needs_zero or not known:
        points = points if points is not None else measure_sky(group, options.overscan)[0]
        if points:
            model = _sky_zero(model, points, known)
    return model


def _sky_zero(model: NoiseModel, points: list[tuple[float, float]], known_read_noise: bool
              ) -> NoiseModel:
    """Complete a model with what the frames' sky says: the read noise, or where it starts.

    With the slope fixed at one over the gain, the sky's variance against level gives the
    intercept ``c``: ``variance = rn^2 + q + (level - zero) / gain = c + level / gain``.
    """
    slope = 1.0 / model.gain
    intercept = float(np.median([variance - slope * level for level, variance in points]))
    floor = intercept - model.quantisation
    if not known_read_noise:
        if floor >= 0:
            return replace(model, read_noise=float(np.sqrt(floor)) * model.gain,
                           read_noise_source="from the sky noise at its level")
        return replace(model, read_noise=0.0, zero_level=-floor * model.gain,
                       read_noise_source="within the sky noise (not separable from it)")
    rn_adu2 = (model.read_noise / model.gain) ** 2
    zero = (rn_adu2 - floor) * model.gain
    return replace(model, zero_level=zero) if zero > 0 else model


def _measured_read_noise(group: Sequence[FrameInfo], bias: Frame | None,
                         options: ReduceOptions) -> Measured:
    if options.read_noise is not None:
        return Measured()
    measured = measure_read_noise(group, options.overscan)
    if measured.value is None and bias is not None and "RNADU" in bias.header:
        # A night without biases takes the read noise its library master bias measured.
        return Measured(float(bias.header["RNADU"]), "2 biases (of the library bias)")
    return measured


def _header_value(group: Sequence[FrameInfo], attr: str) -> Measured:
    values = {getattr(i, attr) for i in group if getattr(i, attr) is not None}
    if len(values) == 1:
        return Measured(values.pop(), "header")
    if len(values) > 1:
        return Measured(float(np.median(sorted(values))), f"header (median of {len(values)})")
    return Measured()


def _header_gain(group: Sequence[FrameInfo], sensor: Sensor) -> Measured:
    """Return the headers' e-/ADU in saved ADU (an EGAIN per ADC code divided by the step)."""
    values = {(i.gain, i.gain_depth, i.gain_note) for i in group if i.gain is not None}
    if not values:
        notes = {i.gain_note for i in group if i.gain_note}
        return Measured(None, "; ".join(sorted(notes)))
    gain, depth, note = sorted(values)[len(values) // 2]
    if depth == "adc" and sensor.step > 1:
        return Measured(gain / sensor.step, f"header {note} / {sensor.step} ADU per code")
    return Measured(gain, f"header {note}")


def _gain(group: Sequence[FrameInfo], options: ReduceOptions, sensor: Sensor,
          zero_for: Callable[[FrameInfo], Frame | None] | None, rn_adu: float | None):
    """Return the gain, how it was found, and the sky line when it came from the frames' sky."""
    ptc = (measure_gain(group, zero_for, rn_adu, options.overscan) if zero_for else Measured())
    if options.gain is not None:
        source = options.sources.get("gain", "command line")
        if ptc.value is not None and not _agree(options.gain, ptc.value):
            source += f" (photon transfer of the flats gives {ptc.value:.3g})"
        return options.gain, source, None
    header = _header_gain(group, sensor)
    if header.value is not None and ptc.value is not None:
        ratio = header.value / ptc.value
        if _agree(header.value, ptc.value):
            return header.value, f"{header.how}; photon transfer agrees ({ratio:.2f})", None
        return ptc.value, (f"measured by {ptc.how}; the {header.how} value "
                           f"{header.value:.3g} is {ratio:.2f}x off"), None
    plausible = header.value is not None and PLAUSIBLE_GAIN[0] <= header.value <= \
        PLAUSIBLE_GAIN[1]
    if plausible:
        return header.value, header.how, None
    if ptc.value is not None:
        return ptc.value, f"measured by {ptc.how}", None
    return _sky_gain(group, options, header)


def _sky_gain(group: Sequence[FrameInfo], options: ReduceOptions, header: Measured):
    points, frames = measure_sky(group, options.overscan)
    why = header.how or "no e-/ADU keyword"
    line = fit_noise_line(points)
    if line is None:
        return 1.0, f"unknown ({why}; no frame to measure): 1.0", None
    if line.fitted:
        return 1.0 / line.slope, (f"from the sky noise against level of {frames} ({why})"), \
            points
    return 1.0 / line.slope, (f"from the sky noise of {frames}, all taken as photon noise "
                              f"({why}; one sky level)"), [(level, variance) for level, variance
                                                           in points]


def _agree(value: float, measured: float) -> bool:
    return GAIN_AGREEMENT[0] <= value / measured <= GAIN_AGREEMENT[1]


def _read_noise(options: ReduceOptions, header: Measured, measured: Measured,
                gain: float) -> tuple[float, str]:
    """Return the read noise (e-): option or header unless the biases contradict it."""
    if options.read_noise is not None:
        given = Measured(options.read_noise, options.sources.get("read_noise", "command line"))
    else:
        given = header
    rn_adu, rn_from = measured.value, measured.how
    if given.value is not None and rn_adu is not None and rn_from.startswith("2 biases"):
        ratio = rn_adu * gain / given.value
        if not READ_NOISE_AGREEMENT[0] <= ratio <= READ_NOISE_AGREEMENT[1]:
            # The data's own noise wins: a noise model that is off by a factor flags noise as
            # cosmic rays and misstates every uncertainty.
            return rn_adu * gain, (f"measured from {rn_from} ({rn_adu:.2f} ADU); the "
                                   f"{given.how} value {given.value:.3g} e- is {ratio:.2f}x off")
    if given.value is not None:
        return given.value, given.how
    if rn_adu is not None:
        return rn_adu * gain, f"measured from {rn_from} ({rn_adu:.2f} ADU)"
    why = rn_from or "no pair of biases or darks"
    return 0.0, f"unknown (no keyword, {why}): 0"


def read_noise_cards(inputs: Sequence[FrameInfo], options: ReduceOptions) -> dict[str, tuple]:
    """Header cards recording the read noise a master bias's raw frames show (for borrowers)."""
    measured = measure_read_noise(inputs, options.overscan)
    if measured.how != "2 biases":
        return {}
    return {"RNADU": (round(measured.value, 4), "[adu] read noise from 2 raw biases")}
