"""The calibration of one science frame: the step table, and the task that writes it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .. import io, steps
from ..flags import Flag, count_flags
from ..frame import Frame
from ..geometry import ReadoutGeometry, readout_geometry
from ..instruments.camera import bayer_cards
from .masters import geometry_history, median_level
from .noise import NoiseModel
from .options import ReduceOptions
from .plan import SciencePlan
from .products import REDUCED, Input, Product, made, master_reference, version
from .tasks import MasterRef, limit_threads, load_master

__all__ = ["SCIENCE_STEPS", "calibrate_science", "ScienceJob", "science_task",
           "science_product", "ReducedHook"]

SCIENCE_STEPS = (
    "flag_nonfinite",
    "flag_saturation",
    "overscan",
    "trim",
    "noise_model",
    "subtract_bias",
    "subtract_dark",
    "flat_correct",
    "flag_defects",
    "reject_cosmics",
    "repair",
    "convert_units",
)
"""The ordered calibration of a science frame. Saturation is flagged on the raw values; the
overscan and trim come before anything else changes the values; the noise model is attached
before any master is subtracted; defects are repaired in ADU; the conversion to electrons, if
asked, comes last so that every step before it works in the masters' units."""


@dataclass(frozen=True)
class _Context:
    plan: SciencePlan
    masters: Mapping[str, Frame]
    noise: NoiseModel
    options: ReduceOptions
    saturation: float | None
    geometry: ReadoutGeometry


def _step_flag_nonfinite(frame: Frame, ctx: _Context) -> Frame:
    return steps.flag_nonfinite(frame)


def _step_flag_saturation(frame: Frame, ctx: _Context) -> Frame:
    return steps.flag_saturation(frame, ctx.saturation)


def _step_overscan(frame: Frame, ctx: _Context) -> Frame:
    if ctx.options.overscan is None or ctx.geometry.biassec is None:
        return frame
    return steps.subtract_overscan(frame, ctx.geometry.biassec, model=ctx.options.overscan)


def _step_trim(frame: Frame, ctx: _Context) -> Frame:
    if ctx.options.overscan is None or ctx.geometry.trimsec is None:
        return frame
    return steps.trim(frame, ctx.geometry.trimsec)


def _step_noise_model(frame: Frame, ctx: _Context) -> Frame:
    zero = ctx.masters.get(ctx.plan.bias) if ctx.plan.bias else None
    if zero is None and ctx.plan.dark is not None:
        zero = ctx.masters[ctx.plan.dark.master]
        if ctx.plan.dark.level_only:
            zero = median_level(zero)
    if zero is None:
        zero = ctx.noise.zero_level
    return steps.add_noise_model(frame, gain=ctx.noise.gain, read_noise=ctx.noise.read_noise,
                                 zero_level=zero, quantisation=ctx.noise.quantisation)


def _step_subtract_bias(frame: Frame, ctx: _Context) -> Frame:
    if ctx.plan.bias is None:
        return frame
    return steps.subtract_bias(frame, ctx.masters[ctx.plan.bias])


def _step_subtract_dark(frame: Frame, ctx: _Context) -> Frame:
    if ctx.plan.dark is None:
        return frame
    dark = ctx.masters[ctx.plan.dark.master]
    scale = ctx.plan.dark.scale
    if ctx.plan.dark.level_only:
        level = median_level(dark)
        return (frame - level).with_header({
            "DARKSCL": (0.0, "the master dark itself is not applied"),
            "PEDESTAL": (round(level, 3), "[adu] pedestal subtracted: median of the dark")})
    cards = {"DARKSCL": (round(scale, 6), "factor applied to the master dark")}
    if ctx.options.optimize_dark and dark.header.get("DARKSCAL", False):
        try:
            scale = steps.optimal_dark_scale(frame, dark, cfa=ctx.plan.input.cfa)
        except ValueError as err:
            cards["DARKOPT"] = (f"not fitted: {err}"[:68], "dark optimisation")
        else:
            cards = {"DARKSCL": (round(scale, 6), "fitted factor applied to the master dark"),
                     "DARKEXPS": (round(ctx.plan.dark.scale, 6),
                                  "exposure-time ratio to the dark")}
    return steps.subtract_dark(frame, dark, scale).with_header(cards)


def _step_flat_correct(frame: Frame, ctx: _Context) -> Frame:
    if ctx.plan.flat is None:
        return frame
    return steps.flat_correct(frame, ctx.masters[ctx.plan.flat], min_flat=ctx.options.min_flat)


def _step_flag_defects(frame: Frame, ctx: _Context) -> Frame:
    if ctx.plan.badpix is None or ctx.plan.badpix not in ctx.masters:
        return frame
    defects = ctx.masters[ctx.plan.badpix].dq & np.uint16(Flag.HOT | Flag.DEAD)
    return frame.replace(dq=frame.dq | defects)


def _step_reject_cosmics(frame: Frame, ctx: _Context) -> Frame:
    if not ctx.options.cosmics:
        return frame
    return steps.reject_cosmics(frame, gain=ctx.noise.gain, read_noise=ctx.noise.read_noise,
                                cfa=ctx.plan.input.cfa)


def _step_repair(frame: Frame, ctx: _Context) -> Frame:
    policy = ctx.options.repair
    if policy == "none":
        return frame
    where = None
    if policy == "unusable":
        flat = ctx.masters[ctx.plan.flat] if ctx.plan.flat else None
        where = steps.unusable_pixels(frame, flat=flat, dead_response=ctx.options.dead_response,
                                      hot_noise=ctx.options.hot_noise)
    repaired = steps.repair(frame, cfa=ctx.plan.input.cfa, where=where)
    return repaired.with_header({"REPAIR": (policy, "which flagged pixels were repaired")})


def _step_convert_units(frame: Frame, ctx: _Context) -> Frame:
    if ctx.options.units == "adu":
        return frame.with_header({"BUNIT": ("adu", "data units (uncertainty too)")})
    gain = ctx.noise.gain
    return (frame * gain).with_header(
        {"BUNIT": ("electron", "data units (uncertainty too): ADU x GAIN")},
        [f"units: ADU x {gain:.6g} e-/ADU = electrons (gain from {ctx.noise.gain_source})"])


_STEP_FUNCTIONS: dict[str, Callable[[Frame, _Context], Frame]] = {
    "flag_nonfinite": _step_flag_nonfinite,
    "flag_saturation": _step_flag_saturation,
    "overscan": _step_overscan,
    "trim": _step_trim,
    "noise_model": _step_noise_model,
    "subtract_bias": _step_subtract_bias,
    "subtract_dark": _step_subtract_dark,
    "flat_correct": _step_flat_correct,
    "flag_defects": _step_flag_defects,
    "reject_cosmics": _step_reject_cosmics,
    "repair": _step_repair,
    "convert_units": _step_convert_units,
}


def calibrate_science(raw: Frame, plan: SciencePlan, masters: Mapping[str, Frame],
                      noise: NoiseModel, options: ReduceOptions, saturation: float | None
                      ) -> Frame:
    """Run `SCIENCE_STEPS` over one raw science frame."""
    ctx = _Context(plan, masters, noise, options, saturation,
                   readout_geometry(raw.header, raw.shape))
    frame = raw
    for name in SCIENCE_STEPS:
        frame = _STEP_FUNCTIONS[name](frame, ctx)
    return frame


ReducedHook = Callable[[Path, Product, Frame, Frame, Mapping[str, tuple[MasterRef, Frame]]],
                      None]
"""``hook(out_dir, product, raw, reduced, masters)``: called in the worker with each science
frame just written (its manifest record, the raw frame, the reduced frame, and every master
it used, by plan name, with its reference). The night report draws the frame's section there,
while both frames are in memory."""


@dataclass(frozen=True)
class ScienceJob:
    """Everything one worker needs to calibrate one science frame and write it."""

    plan: SciencePlan
    masters: tuple[MasterRef, ...]
    noise: NoiseModel
    options: ReduceOptions
    saturation: float | None
    output: Path
    key: str
    raw_sum: str
    stamp: str
    threads: int
    on_reduced: ReducedHook | None = None


def science_task(job: ScienceJob) -> Product:
    """Calibrate one science frame and write it (runs in any executor's worker).

    Then ``job.on_reduced``, if set, is called with the frames still in memory
    (`ReducedHook`).
    """
    limit_threads(job.threads)
    masters = {ref.name: load_master(ref) for ref in job.masters}
    raw = io.read(job.plan.input.path)
    reduced = calibrate_science(raw, job.plan, masters, job.noise, job.options, job.saturation)
    reduced = _provenance(reduced, job, Path(job.output).parent.parent)
    io.write(reduced, job.output, layout="compact" if job.options.compress else "ccddata")
    product = science_product(job, reduced.header)
    if job.on_reduced is not None:
        out = Path(job.output).parent.parent
        job.on_reduced(out, product, raw, reduced,
                       {ref.name: (ref, masters[ref.name]) for ref in job.masters})
    return product


def science_product(job: ScienceJob, header: fits.Header) -> Product:
    """Return the manifest's record of a reduced frame written (or kept) by ``job``."""
    sci = job.plan
    return made(job.output, REDUCED, Path(job.output).name,
                inputs=[Input(sci.input.path, job.raw_sum)], parameters={
                    "bias": sci.bias,
                    "dark": None if sci.dark is None else {**asdict(sci.dark),
                                                           "scale": header["DARKSCL"]},
                    "flat": sci.flat, "gain": job.noise.gain,
                    "read_noise": job.noise.read_noise, "repair": job.options.repair,
                    "cosmics": job.options.cosmics,
                    "units": str(header.get("BUNIT", "adu")),
                    "layout": "compact" if job.options.compress else "ccddata"})


def _provenance(frame: Frame, job: ScienceJob, out: Path) -> Frame:
    sci, noise = job.plan, job.noise
    cards: dict[str, Any] = {"CCDRED": (version(), "ccdred version"),
                             "CCDRDATE": (job.stamp, "UTC time of reduction"),
                             "CCDRKEY": (job.key, "hash of inputs and parameters"),
                             "RAWFILE": (sci.input.path.name[-68:], "raw input frame"),
                             "RAWSHA": (job.raw_sum, "SHA-256 of the raw input"),
                             "GAIN": (noise.gain, "[e-/ADU] gain used"),
                             "GAINSRC": (noise.gain_source[:68], "where the gain came from"),
                             "RDNOISE": (round(noise.read_noise, 3), "[e-] read noise used"),
                             "RNSRC": (noise.read_noise_source[:68], "where read noise came from"),
                             **bayer_cards(sci.input.cfa)}
    history = [f"ccdred {version()}: calibrated as (raw - bias - dark) / flat"]
    history.extend(geometry_history(sci.input, job.options.overscan))
    refs = {ref.name: (master_reference(Path(ref.path), out), ref.sha256) for ref in job.masters}
    for key, name in (("BIAS", sci.bias), ("FLAT", sci.flat)):
        if name:
            cards[f"{key}FILE"] = (refs[name][0][-68:], f"master {key.lower()}")
            cards[f"{key}SHA"] = (refs[name][1], f"SHA-256 of master {key.lower()}")
            history.append(f"{key.lower()}: {refs[name][0]}")
        else:
            history.append(f"{key.lower()}: none applied")
    history.append(_dark_history(frame, sci, refs, cards))
    counts = [f"{f.name}={v}" for f, v in count_flags(frame.dq).items() if v]
    history.extend(_lines("flags: ", counts))
    return frame.with_header(cards, history)


def _lines(lead: str, items: list[str], width: int = 72) -> list[str]:
    """``lead`` and the items, comma-separated, in lines of at most ``width`` characters.

    A HISTORY card holds 72: astropy cuts a longer text anywhere, mid-word.
    """
    lines = [lead + "none"] if not items else []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += ", " + item
        else:
            lines.append((lead if not lines else "  ") + item)
    return lines


def _dark_history(frame: Frame, sci: SciencePlan, refs: Mapping[str, tuple[str, str]],
                  cards: dict[str, Any]) -> str:
    if not sci.dark:
        return "dark: none applied"
    reference, checksum = refs[sci.dark.master]
    cards["DARKFILE"] = (reference[-68:], "master dark")
    cards["DARKSHA"] = (checksum, "SHA-256 of master dark")
    if sci.dark.level_only:
        return f"dark: not applied; pedestal {frame.header['PEDESTAL']:.5g} = median of {reference}"
    scale = frame.header["DARKSCL"]
    how = (f"fitted; exposure ratio {frame.header['DARKEXPS']:.5g}"
           if "DARKEXPS" in frame.header else sci.dark.reason)
    return f"dark: {reference} x {scale:.5g} ({how})"
