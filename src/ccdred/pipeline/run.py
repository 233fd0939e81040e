"""Run a night's plan: build the masters, calibrate every science frame, write the manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import io, steps
from ..errors import BadInputError
from ..flags import Flag
from ..frame import Frame
from ..inventory import FrameInfo, describe_file, scan
from ..kernels.noise import gain_from_flats, read_noise_adu
from ..steps import CombineOptions
from ..steps.overscan import OVERSCAN_MODELS, ReadoutGeometry, apply_geometry, readout_geometry
from .plan import MasterPlan, NightPlan, SciencePlan, build_plan

__all__ = ["ReduceOptions", "NoiseModel", "NightResult", "plan_night", "reduce_night",
           "SCIENCE_STEPS", "calibrate_science"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances."""


@dataclass(frozen=True)
class ReduceOptions:
    """Everything that decides how a night is reduced (recorded in the manifest)."""

    bias_combine: CombineOptions = CombineOptions()
    dark_combine: CombineOptions = CombineOptions()
    flat_combine: CombineOptions = CombineOptions()
    hot_sigma: float = 5.0
    dead_sigma: float = 5.0
    min_flat: float = 0.1
    repair: bool = True
    cosmics: bool = True
    gain: float | None = None
    """Electrons per ADU; overrides headers and measurement."""
    read_noise: float | None = None
    """Electrons; overrides headers and measurement."""
    saturation: float | None = None
    """Raw ADU; overrides headers and the ADC limit."""
    skip_bad: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    """Where ``gain``, ``read_noise`` or ``saturation`` came from when not the command line,
    e.g. ``{"gain": "instrument file arcsat.toml"}``; written into the headers."""
    optimize_dark: bool = False
    """Fit each science frame's dark factor (`ccdred.steps.optimal_dark_scale`) instead of
    using the exposure-time ratio, for cameras whose dark does not scale cleanly."""
    overscan: str | None = "median"
    """Overscan model where headers give a BIASSEC (median, mean, poly); None: no overscan
    subtraction and no trimming."""

    def __post_init__(self) -> None:
        if self.overscan is not None and self.overscan not in OVERSCAN_MODELS:
            raise ValueError(f"overscan must be one of {', '.join(OVERSCAN_MODELS)}, "
                             f"got {self.overscan!r}")
        for name in ("hot_sigma", "dead_sigma", "min_flat"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("gain", "read_noise", "saturation"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class NoiseModel:
    """Gain (e-/ADU) and read noise (e-) of a readout setup, and where each came from."""

    gain: float
    gain_source: str
    read_noise: float
    read_noise_source: str


@dataclass
class NightResult:
    """What a run wrote."""

    plan: NightPlan
    out_dir: Path
    masters: dict[str, Path] = field(default_factory=dict)
    reduced: list[Path] = field(default_factory=list)
    noise: dict[str, NoiseModel] = field(default_factory=dict)
    manifest: Path | None = None


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
)
"""The ordered calibration of a science frame. Saturation is flagged on the raw values; the
overscan and trim come before anything else changes the values; the noise model is attached
before any master is subtracted; defects are repaired last."""


@dataclass(frozen=True)
class _Context:
    plan: SciencePlan
    masters: dict[str, Frame]
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
    return steps.add_noise_model(frame, gain=ctx.noise.gain, read_noise=ctx.noise.read_noise,
                                 zero_level=zero)


def _step_subtract_bias(frame: Frame, ctx: _Context) -> Frame:
    if ctx.plan.bias is None:
        return frame
    return steps.subtract_bias(frame, ctx.masters[ctx.plan.bias])


def _step_subtract_dark(frame: Frame, ctx: _Context) -> Frame:
    if ctx.plan.dark is None:
        return frame
    dark = ctx.masters[ctx.plan.dark.master]
    scale = ctx.plan.dark.scale
    cards = {"DARKSCL": (round(scale, 6), "factor applied to the master dark")}
    if ctx.options.optimize_dark and dark.header.get("DARKSCAL", False):
        try:
            scale = steps.optimal_dark_scale(frame, dark)
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
    return steps.reject_cosmics(frame, gain=ctx.noise.gain, read_noise=ctx.noise.read_noise)


def _step_repair(frame: Frame, ctx: _Context) -> Frame:
    return steps.repair(frame) if ctx.options.repair else frame


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
}


def calibrate_science(raw: Frame, plan: SciencePlan, masters: dict[str, Frame],
                      noise: NoiseModel, options: ReduceOptions, saturation: float | None
                      ) -> Frame:
    """Run `SCIENCE_STEPS` over one raw science frame."""
    ctx = _Context(plan, masters, noise, options, saturation,
                   readout_geometry(raw.header, raw.shape))
    frame = raw
    for name in SCIENCE_STEPS:
        frame = _STEP_FUNCTIONS[name](frame, ctx)
    return frame


def _saturation_level(info: FrameInfo, options: ReduceOptions) -> float | None:
    """Raw saturation: the option, else SATURATE/DATAMAX, else the ADC's largest value."""
    if options.saturation is not None:
        return options.saturation
    if info.saturation is not None:
        return info.saturation
    if info.bitpix and info.bitpix > 0:
        bzero = info.bzero or 0.0
        return float(2 ** (info.bitpix - 1) - 1 + bzero)
    return None


def plan_night(raw_dir: str | Path, out_dir: str | Path | None = None) -> NightPlan:
    """Scan ``raw_dir`` and plan its reduction (headers only; nothing is written).

    Raises
    ------
    ValueError
        ``raw_dir`` is not a directory, or ``out_dir`` is the raw directory itself.
    """
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise ValueError(f"{raw}: not a directory")
    exclude = []
    if out_dir is not None:
        out = Path(out_dir)
        if out.resolve() == raw.resolve():
            raise ValueError(f"{out}: the output directory cannot be the raw directory itself")
        exclude.append(out)
    return build_plan(scan(raw, exclude=exclude), raw)


READ_NOISE_AGREEMENT = (0.8, 1.25)
"""Measured/header read-noise ratios within which the header's value is trusted."""


def _noise_model(setup: tuple[Any, ...], suffix: str, infos: dict[Path, FrameInfo],
                 masters: dict[str, Frame], options: ReduceOptions) -> NoiseModel:
    """Gain and read noise of a setup: option, header, measured, or assumed (in that order)."""
    group = [i for i in infos.values() if i.setup == setup]
    gain, gain_source = _header_value(group, "gain", options.gain,
                                      options.sources.get("gain", "command line"))
    rn, rn_source = _header_value(group, "read_noise", options.read_noise,
                                  options.sources.get("read_noise", "command line"))
    rn_adu, rn_from = _measure_read_noise(group, options) if options.read_noise is None else (
        None, "")
    if gain is None:
        gain, gain_source = _measure_gain(group, masters.get(f"bias{suffix}"), rn_adu, options)
    if rn is not None and rn_adu is not None and rn_from == "2 biases":
        ratio = rn_adu * gain / rn
        if not READ_NOISE_AGREEMENT[0] <= ratio <= READ_NOISE_AGREEMENT[1]:
            # The data's own noise wins: a noise model that is off by a factor flags noise as
            # cosmic rays and misstates every uncertainty.
            rn_source = (f"measured from 2 biases ({rn_adu:.2f} ADU); the {rn_source} value "
                         f"{rn:.3g} e- is {ratio:.2f}x off")
            rn = rn_adu * gain
    if rn is None:
        if rn_adu is not None:
            rn, rn_source = rn_adu * gain, f"measured from {rn_from} ({rn_adu:.2f} ADU)"
        else:
            rn, rn_source = 0.0, "unknown (no keyword, no pair of biases or darks): 0"
    return NoiseModel(gain, gain_source, rn, rn_source)


def _measure_read_noise(group: Sequence[FrameInfo], options: ReduceOptions
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


def _validate_inputs(plan: NightPlan, options: ReduceOptions) -> None:
    if plan.skipped and not options.skip_bad:
        lines = "\n".join(f"  {i.path}: {i.error}" for i in plan.skipped)
        raise BadInputError(plan.raw_dir,
                            f"{len(plan.skipped)} unusable file(s); nothing was written "
                            f"(use --skip-bad to go on without them):\n{lines}")
    if not plan.masters and not plan.science:
        raise BadInputError(plan.raw_dir, "no bias, dark, flat or science frames found")


def _check_writable(out: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(out, f"cannot write here: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(out, f"cannot write here: no permission to write in {existing}")


def reduce_night(raw_dir: str | Path, out_dir: str | Path, *,
                 options: ReduceOptions = ReduceOptions(), progress: Progress | None = None,
                 plan: NightPlan | None = None) -> NightResult:
    """Reduce a whole night: masters, bad-pixel map, calibrated science frames, manifest.

    Parameters
    ----------
    raw_dir : path
        Folder with the night's raw FITS files (searched recursively). Never written to.
    out_dir : path
        Where ``masters/``, ``reduced/`` and ``manifest.json`` go.
    options : ReduceOptions
        How to reduce.
    progress : callable, optional
        ``progress(stage, done, total)``.
    plan : NightPlan, optional
        A plan from `plan_night` (made here when omitted).

    Raises
    ------
    BadInputError
        Some inputs are unusable (unless ``options.skip_bad``), or there is nothing to do.
    """
    out = Path(out_dir)
    plan = plan or plan_night(raw_dir, out)
    _validate_inputs(plan, options)
    _check_writable(out)
    report = progress or (lambda stage, done, total: None)
    infos = {i.input.path: i.input for i in plan.science}
    for master in plan.masters:
        for path in master.inputs:
            infos.setdefault(path, describe_file(path, plan.raw_dir))
    checksums = {path: io.sha256(path) for path in infos}
    result = NightResult(plan=plan, out_dir=out)
    masters: dict[str, Frame] = {}
    products: list[dict[str, Any]] = []

    def noise_for(setup: tuple[Any, ...]) -> NoiseModel:
        """Return the setup's noise model, made once, when a master or frame first needs it."""
        suffix = plan.setups.get(setup, "")
        if suffix not in result.noise:
            result.noise[suffix] = _noise_model(setup, suffix, infos, masters, options)
        return result.noise[suffix]

    total = len(plan.masters)
    for done, master in enumerate(plan.masters):
        report("masters", done, total)
        frame = _build_master(master, masters, infos, checksums, options)
        if frame.variance is None or np.isnan(frame.variance[~frame.bad]).any():
            frame = _model_master_variance(frame, master, noise_for(master.setup))
        masters[master.name] = frame
        path = io.write(frame, out / "masters" / master.filename)
        result.masters[master.name] = path
        products.append(_product(path, f"master_{master.kind}", master.inputs, checksums,
                                 {"combine": _options_for(master, options).describe(),
                                  "exptime": master.exptime, "filter": master.filter,
                                  "darks": [None if d is None else asdict(d)
                                            for d in master.darks]}))
    report("masters", total, total)
    for name, dq in _badpix_maps(plan, masters).items():
        path = io.write_dq(dq, out / "masters" / f"{name}.fits")
        masters[name] = Frame(np.zeros(dq.shape, np.float32), dq=dq)
        result.masters[name] = path
        products.append(_product(path, "badpix", (), checksums,
                                 {"hot_sigma": options.hot_sigma,
                                  "dead_sigma": options.dead_sigma}))
    for setup in plan.setups:
        noise_for(setup)
    master_sums = {name: io.sha256(path) for name, path in result.masters.items()}
    for done, sci in enumerate(plan.science):
        report("science", done, len(plan.science))
        suffix = plan.setups.get(sci.input.setup, "")
        noise = result.noise[suffix]
        raw = io.read(sci.input.path)
        reduced = calibrate_science(raw, sci, masters, noise, options,
                                    _saturation_level(sci.input, options))
        reduced = _science_provenance(reduced, sci, result.masters, master_sums, noise,
                                      checksums[sci.input.path], options)
        path = io.write(reduced, out / "reduced" / sci.output)
        result.reduced.append(path)
        products.append(_product(path, "reduced", (sci.input.path,), checksums, {
            "bias": sci.bias,
            "dark": None if sci.dark is None else {**asdict(sci.dark),
                                                   "scale": reduced.header["DARKSCL"]},
            "flat": sci.flat, "gain": noise.gain, "read_noise": noise.read_noise,
            "repair": options.repair, "cosmics": options.cosmics}))
    report("science", len(plan.science), len(plan.science))
    result.manifest = _write_manifest(out, plan, options, result, products)
    return result


def _options_for(master: MasterPlan, options: ReduceOptions) -> CombineOptions:
    return {"bias": options.bias_combine, "dark": options.dark_combine,
            "flat": options.flat_combine}[master.kind]


def _build_master(master: MasterPlan, built: dict[str, Frame], infos: dict[Path, FrameInfo],
                  checksums: dict[Path, str], options: ReduceOptions) -> Frame:
    combine_options = _options_for(master, options)
    saturation = _saturation_level(infos[master.inputs[0]], options)
    bias = built.get(master.bias) if master.bias else None
    if master.kind == "bias":
        result = steps.make_master_bias(master.inputs, options=combine_options,
                                        saturation=saturation, overscan=options.overscan)
        frame = result.frame
    elif master.kind == "dark":
        result = steps.make_master_dark(master.inputs, bias=bias, options=combine_options,
                                        saturation=saturation, overscan=options.overscan)
        frame = steps.find_hot_pixels(result.frame, k=options.hot_sigma)
    else:
        darks = [None if d is None else (built[d.master], d.scale) for d in master.darks]
        result = steps.make_master_flat(master.inputs, bias=bias, darks=darks,
                                        options=combine_options, saturation=saturation,
                                        min_flat=options.min_flat, overscan=options.overscan)
        frame = steps.find_dead_pixels(result.frame, k=options.dead_sigma)
    headers = [io.read_header(p, check_data=False) for p in master.inputs]  # checked at scan
    header = steps.master_header(headers, [p.name for p in master.inputs], kind=master.kind,
                                 exptime=master.exptime if master.kind != "flat" else None,
                                 options=combine_options,
                                 checksums=[checksums[p] for p in master.inputs])
    history = [f"ccdred {_version()}: master {master.kind} from {len(master.inputs)} frames"]
    geometry_notes = _geometry_history(infos[master.inputs[0]], options)
    if geometry_notes:
        # The master is already trimmed: its inputs' sections no longer describe it.
        for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
            header.remove(key, ignore_missing=True)
        history.extend(geometry_notes)
    if bias is not None:
        history.append(f"bias subtracted: masters/{master.bias}.fits")
    if master.kind == "dark":
        n_hot = int(((frame.dq & np.uint16(Flag.HOT)) != 0).sum())
        header["NHOTPIX"] = (n_hot, f"hot pixels (> median + {options.hot_sigma:g} sigma)")
        header["DARKSCAL"] = (master.scalable, "bias-subtracted: scales with exposure time")
    if master.kind == "flat":
        header["FILTER"] = master.filter or ""
        header["FLATLVL"] = (frame.header["FLATLVL"], "[adu] raw level of a flat value of 1")
        n_dead = int(((frame.dq & np.uint16(Flag.DEAD)) != 0).sum())
        header["NDEADPIX"] = (n_dead, f"dead/weak pixels (< local - {options.dead_sigma:g} sig)")
        for flat_path, choice in zip(master.inputs, master.darks, strict=True):
            if choice is not None:
                history.append(f"{flat_path.name}: dark masters/{choice.master}.fits "
                               f"x {choice.scale:.5g}")
        history.append("each flat normalised by its median, combined, normalised to mean 1")
    frame = frame.replace(header=header)
    return frame.with_header({"CCDRED": (_version(), "ccdred version")}, history=history)


def _model_master_variance(frame: Frame, master: MasterPlan, noise: NoiseModel) -> Frame:
    """Fill the variance a stack too small to measure it (a single frame) left unknown.

    The noise model gives it: read noise, plus Poisson noise of the dark or flat signal.
    """
    n = len(master.inputs)
    rn_adu2 = (noise.read_noise / noise.gain) ** 2
    signal = np.maximum(np.nan_to_num(frame.data.astype(np.float64)), 0)
    if master.kind == "bias":
        model = np.full(frame.shape, rn_adu2 / n)
    elif master.kind == "dark":
        model = (rn_adu2 + signal / noise.gain) / n
    else:
        level = float(frame.header.get("FLATLVL", 0.0))
        if not level > 0:
            return frame
        model = (rn_adu2 + signal * level / noise.gain) / (level**2 * n)
    current = frame.variance if frame.variance is not None else np.full(frame.shape, np.nan)
    variance = np.where(np.isnan(current), model, current).astype(np.float32)
    return frame.replace(variance=variance).with_header(history=[
        f"variance from the noise model where {n} frame(s) could not measure it"])


def _badpix_maps(plan: NightPlan, masters: dict[str, Frame]) -> dict[str, np.ndarray]:
    maps: dict[str, np.ndarray] = {}
    for master in plan.masters:
        if master.kind not in ("dark", "flat"):
            continue
        name = f"badpix{plan.setups.get(master.setup, '')}"
        dq = masters[master.name].dq & np.uint16(Flag.HOT | Flag.DEAD)
        maps[name] = dq if name not in maps else maps[name] | dq
    return maps


def _geometry_history(info: FrameInfo, options: ReduceOptions) -> list[str]:
    """HISTORY lines for the overscan and trim applied to a raw frame (none if neither)."""
    if options.overscan is None:
        return []
    lines = []
    if info.overscan:
        lines.append(f"overscan {info.overscan} subtracted ({options.overscan} per row)")
    if info.data_shape and info.shape and info.data_shape != info.shape:
        lines.append(f"trimmed from {info.shape[1]}x{info.shape[0]} to "
                     f"{info.data_shape[1]}x{info.data_shape[0]}")
    return lines


def _science_provenance(frame: Frame, sci: SciencePlan, master_paths: dict[str, Path],
                        master_sums: dict[str, str], noise: NoiseModel, raw_sum: str,
                        options: ReduceOptions) -> Frame:
    cards: dict[str, Any] = {"CCDRED": (_version(), "ccdred version"),
                             "CCDRDATE": (datetime.now(UTC).isoformat(timespec="seconds"),
                                          "UTC time of reduction"),
                             "RAWFILE": (sci.input.path.name[-68:], "raw input frame"),
                             "RAWSHA": (raw_sum, "SHA-256 of the raw input"),
                             "GAIN": (round(noise.gain, 4), "[e-/ADU] gain used"),
                             "GAINSRC": (noise.gain_source[:68], "where the gain came from"),
                             "RDNOISE": (round(noise.read_noise, 3), "[e-] read noise used"),
                             "RNSRC": (noise.read_noise_source[:68], "where read noise came from"),
                             "BUNIT": "adu"}
    history = [f"ccdred {_version()}: calibrated as (raw - bias - dark) / flat"]
    history.extend(_geometry_history(sci.input, options))
    for key, name in (("BIAS", sci.bias), ("FLAT", sci.flat)):
        if name:
            cards[f"{key}FILE"] = (f"masters/{master_paths[name].name}", f"master {key.lower()}")
            cards[f"{key}SHA"] = (master_sums[name], f"SHA-256 of master {key.lower()}")
            history.append(f"{key.lower()}: masters/{master_paths[name].name}")
        else:
            history.append(f"{key.lower()}: none applied")
    if sci.dark:
        cards["DARKFILE"] = (f"masters/{master_paths[sci.dark.master].name}", "master dark")
        cards["DARKSHA"] = (master_sums[sci.dark.master], "SHA-256 of master dark")
        scale = frame.header["DARKSCL"]
        how = (f"fitted; exposure ratio {frame.header['DARKEXPS']:.5g}"
               if "DARKEXPS" in frame.header else sci.dark.reason)
        history.append(f"dark: masters/{master_paths[sci.dark.master].name} x "
                       f"{scale:.5g} ({how})")
    else:
        history.append("dark: none applied")
    counts = {flag.name: int(((frame.dq & np.uint16(flag)) != 0).sum()) for flag in Flag}
    history.append("flags: " + ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    return frame.with_header(cards, history)


def _product(path: Path, role: str, inputs: Sequence[Path], checksums: dict[Path, str],
             parameters: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(path), "role": role,
            "inputs": [{"path": str(p), "sha256": checksums[p]} for p in inputs],
            "parameters": parameters, "sha256": io.sha256(path)}


def _write_manifest(out: Path, plan: NightPlan, options: ReduceOptions, result: NightResult,
                    products: list[dict[str, Any]]) -> Path:
    manifest = {
        "ccdred_version": _version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "raw_dir": str(plan.raw_dir),
        "options": asdict(options),
        "noise": {k or "default": asdict(v) for k, v in result.noise.items()},
        "plan": plan.to_json(),
        "products": products,
    }
    path = out / "manifest.json"
    with io.atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _version() -> str:
    from .. import __version__

    return __version__
