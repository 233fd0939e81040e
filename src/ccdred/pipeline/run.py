"""Run a night's plan: build the masters, calibrate every science frame, write the manifest."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .. import io, steps
from ..combine import CombineResult
from ..errors import BadInputError
from ..flags import Flag
from ..frame import Frame
from ..inventory import FrameInfo, describe_file, scan
from ..kernels.noise import gain_from_flats, read_noise_adu
from ..library import CalibrationLibrary, Rules
from ..steps import CombineOptions
from ..steps.overscan import OVERSCAN_MODELS, ReadoutGeometry, apply_geometry, readout_geometry
from .executors import Executor, InProcess, threads_per_worker
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
    rebuilt: list[Path] = field(default_factory=list)
    """Products made by this run (the others were up to date and kept)."""


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


LIBRARY_NAME = "calibrations.sqlite"
"""The calibration library's file name in an output folder (the default library)."""


def plan_night(raw_dir: str | Path, out_dir: str | Path | None = None, *,
               library: str | Path | None = None, rules: Rules | None = None) -> NightPlan:
    """Scan ``raw_dir`` and plan its reduction (headers only; nothing is written).

    Parameters
    ----------
    raw_dir : path
        The night's raw frames.
    out_dir : path, optional
        Where the products will go (excluded from the scan).
    library : path, optional
        Calibration library that serves what the night lacks; by default
        ``out_dir/calibrations.sqlite``. Used only when the file exists.
    rules : Rules, optional
        When a library master may serve (`ccdred.library.Rules`).

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
    library_path = _library_path(library, out_dir)
    infos = scan(raw, exclude=exclude)
    if library_path is None or not library_path.is_file():
        return build_plan(infos, raw, rules=rules)
    with CalibrationLibrary(library_path) as calibrations:
        return build_plan(infos, raw, calibrations, rules)


def _library_path(library: str | Path | None, out_dir: str | Path | None) -> Path | None:
    if library is not None:
        return Path(library)
    return Path(out_dir) / LIBRARY_NAME if out_dir is not None else None


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
    borrowed = masters.get(f"bias{suffix}")
    if rn_adu is None and options.read_noise is None and borrowed is not None and (
            "RNADU" in borrowed.header):
        # A night without biases takes the read noise its library master bias measured.
        rn_adu, rn_from = float(borrowed.header["RNADU"]), "2 biases (of the library bias)"
    if gain is None:
        gain, gain_source = _measure_gain(group, masters.get(f"bias{suffix}"), rn_adu, options)
    if rn is not None and rn_adu is not None and rn_from.startswith("2 biases"):
        ratio = rn_adu * gain / rn
        if not READ_NOISE_AGREEMENT[0] <= ratio <= READ_NOISE_AGREEMENT[1]:
            # The data's own noise wins: a noise model that is off by a factor flags noise as
            # cosmic rays and misstates every uncertainty.
            rn_source = (f"measured from {rn_from} ({rn_adu:.2f} ADU); the {rn_source} value "
                         f"{rn:.3g} e- is {ratio:.2f}x off")
            rn = rn_adu * gain
    if rn is None:
        if rn_adu is not None:
            rn, rn_source = rn_adu * gain, f"measured from {rn_from} ({rn_adu:.2f} ADU)"
        else:
            rn, rn_source = 0.0, "unknown (no keyword, no pair of biases or darks): 0"
    return NoiseModel(gain, gain_source, rn, rn_source)


def _with_read_noise(bias: Frame, inputs: Sequence[FrameInfo], options: ReduceOptions) -> Frame:
    """Record in a master bias the read noise its raw frames show, for nights that borrow it."""
    rn_adu, rn_from = _measure_read_noise(inputs, options)
    if rn_from != "2 biases":
        return bias
    return bias.with_header({"RNADU": (round(rn_adu, 4), "[adu] read noise from 2 raw biases")})


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
                 plan: NightPlan | None = None, executor: Executor | None = None,
                 force: bool = False, masters_only: bool = False,
                 library: str | Path | None = None) -> NightResult:
    """Reduce a whole night: masters, bad-pixel map, calibrated science frames, manifest.

    A re-run skips every product whose inputs and parameters are unchanged (each product's
    header holds a hash of them, ``CCDRKEY``) and redoes the rest, so an interrupted run picks
    up where it stopped; products are written atomically, so none is ever half there.

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
    executor : Executor, optional
        Where tasks run (`ccdred.pipeline.executors`); this process when omitted. Every
        executor writes the same bytes (set ``SOURCE_DATE_EPOCH`` to fix the one time stamp).
    force : bool
        Redo every product, even those that are up to date.
    masters_only : bool
        Build the masters and the bad-pixel maps, and stop (no science frames, no manifest).
    library : path, optional
        Calibration library (`ccdred.library`) where the masters built are registered, and
        which serves what the night lacks; by default ``out_dir/calibrations.sqlite``.

    Raises
    ------
    BadInputError
        Some inputs are unusable (unless ``options.skip_bad``), or there is nothing to do.
    """
    return _reduce(raw_dir, out_dir, options=options, progress=progress, plan=plan,
                   executor=executor, force_masters=force, force_science=force,
                   masters_only=masters_only, library=library)


def _reduce(raw_dir: str | Path, out_dir: str | Path, *, options: ReduceOptions,
            progress: Progress | None, plan: NightPlan | None, executor: Executor | None,
            force_masters: bool, force_science: bool, masters_only: bool,
            library: str | Path | None) -> NightResult:
    out = Path(out_dir)
    plan = plan or plan_night(raw_dir, out, library=library)
    _validate_inputs(plan, options)
    _check_writable(out)
    _remove_stale_parts(out)
    executor = executor or InProcess()
    report = progress or (lambda stage, done, total: None)
    infos = {i.input.path: i.input for i in plan.science}
    for master in plan.masters:
        for path in master.inputs:
            infos.setdefault(path, describe_file(path, plan.raw_dir))
    checksums = {path: io.sha256(path) for path in infos}
    run = _Run(plan, out, options, executor, force_masters, force_science, infos, checksums,
               NightResult(plan=plan, out_dir=out))
    total = len(plan.masters)
    for done, master in enumerate(plan.masters):
        report("masters", done, total)
        run.master(master)
    report("masters", total, total)
    _register(run, _library_path(library, out))
    run.badpix_maps()
    for setup in plan.setups:
        run.noise_for(setup)
    if masters_only:
        return run.result
    run.science(report)
    run.result.manifest = _write_manifest(out, plan, options, run.result, run.products)
    return run.result


@dataclass
class _Run:
    """The state of one run: what is built, its keys, and the products for the manifest."""

    plan: NightPlan
    out: Path
    options: ReduceOptions
    executor: Executor
    force_masters: bool
    force_science: bool
    infos: dict[Path, FrameInfo]
    checksums: dict[Path, str]
    result: NightResult
    masters: dict[str, Frame] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    sums: dict[str, str] = field(default_factory=dict)
    """SHA-256 of every master file, by name (hashed once, when it is written or kept)."""
    products: list[dict[str, Any]] = field(default_factory=list)

    def noise_for(self, setup: tuple[Any, ...]) -> NoiseModel:
        """Return the setup's noise model, made once, when a master or frame first needs it."""
        suffix = self.plan.setups.get(setup, "")
        if suffix not in self.result.noise:
            self.result.noise[suffix] = _noise_model(setup, suffix, self.infos, self.masters,
                                                     self.options)
        return self.result.noise[suffix]

    def master(self, master: MasterPlan) -> None:
        """Build one master (or take it from the library, or keep it when up to date)."""
        if master.library is not None:
            self._borrow(master)
            return
        key = _master_key(master, self.checksums, self.options, self.keys)
        path = self.out / "masters" / master.filename
        if self.force_masters or not _up_to_date(path, key):
            frame = _build_master(master, self.masters, self.infos, self.checksums,
                                  self.options, self.executor)
            if frame.variance is None or np.isnan(frame.variance[~frame.bad]).any():
                frame = _model_master_variance(frame, master, self.noise_for(master.setup))
            if master.kind == "bias":
                frame = _with_read_noise(frame, [self.infos[p] for p in master.inputs],
                                         self.options)
            io.write(frame.with_header({"CCDRKEY": (key, "hash of inputs and parameters")}),
                     path)
            self.result.rebuilt.append(path)
        # Read back: every later step, in any executor, uses the master as written.
        self.masters[master.name] = io.read(path)
        self.keys[master.name] = key
        self.result.masters[master.name] = path
        product = _product(path, f"master_{master.kind}", master.inputs, self.checksums, {
            "combine": _options_for(master, self.options).describe(),
            "exptime": master.exptime, "filter": master.filter,
            "darks": [None if d is None else asdict(d) for d in master.darks]})
        self.sums[master.name] = product["sha256"]
        self.products.append({"name": master.name, **product})

    def _borrow(self, master: MasterPlan) -> None:
        choice = master.library
        path = Path(choice.path)
        actual = io.sha256(path)
        if actual != choice.sha256:
            raise BadInputError(path, f"library master changed since it was registered "
                                      f"(SHA-256 {actual[:12]}..., library {choice.sha256[:12]}"
                                      f"...): re-register it with 'ccdred library add'")
        self.masters[master.name] = io.read(path)
        self.keys[master.name] = self.sums[master.name] = actual
        self.result.masters[master.name] = path
        self.products.append({"path": str(path), "name": master.name,
                              "role": f"master_{master.kind}", "inputs": [], "sha256": actual,
                              "parameters": {"library": asdict(choice)}})

    def badpix_maps(self) -> None:
        """Write each setup's bad-pixel map: the hot and dead pixels of its darks and flats."""
        for name, (dq, sources) in _badpix_maps(self.plan, self.masters).items():
            key = _hash({"badpix": [self.keys[s] for s in sources],
                         "hot_sigma": self.options.hot_sigma,
                         "dead_sigma": self.options.dead_sigma, "version": _version()})
            path = self.out / "masters" / f"{name}.fits"
            if self.force_masters or not _up_to_date(path, key):
                io.write_dq(dq, path, fits.Header({"CCDRKEY": key}))
                self.result.rebuilt.append(path)
            self.masters[name] = Frame(np.zeros(dq.shape, np.float32), dq=dq)
            self.result.masters[name] = path
            product = _product(path, "badpix", (), self.checksums,
                               {"hot_sigma": self.options.hot_sigma,
                                "dead_sigma": self.options.dead_sigma})
            self.sums[name] = product["sha256"]
            self.products.append(product)

    def science(self, report: Progress) -> None:
        """Calibrate every science frame that is not up to date, as executor tasks."""
        stamp = io.reduction_time()
        jobs, products = [], {}
        for index, sci in enumerate(self.plan.science):
            job = self._science_job(sci, stamp)
            if not self.force_science and _up_to_date(job.output, job.key):
                header = io.read_header(job.output)
                products[index] = _science_product(job, header)
            else:
                jobs.append((index, job))
        total = len(self.plan.science)
        done = total - len(jobs)
        report("science", done, total)
        for position, product in self.executor.map_unordered(_science_task,
                                                             [job for _, job in jobs]):
            products[jobs[position][0]] = product
            self.result.rebuilt.append(Path(product["path"]))
            done += 1
            report("science", done, total)
        for index in range(total):
            self.result.reduced.append(Path(products[index]["path"]))
            self.products.append(products[index])

    def _science_job(self, sci: SciencePlan, stamp: str) -> _ScienceJob:
        noise = self.result.noise[self.plan.setups.get(sci.input.setup, "")]
        names = [n for n in (sci.bias, sci.dark.master if sci.dark else None, sci.flat,
                             sci.badpix) if n and n in self.result.masters]
        saturation = _saturation_level(sci.input, self.options)
        raw_sum = self.checksums[sci.input.path]
        sums = {n: self.sums[n] for n in names}
        key = _hash({"raw": raw_sum, "masters": sums, "noise": asdict(noise),
                     "options": asdict(self.options), "saturation": saturation,
                     "dark": asdict(sci.dark) if sci.dark else None, "steps": SCIENCE_STEPS,
                     "version": _version()})
        return _ScienceJob(sci, {n: str(self.result.masters[n]) for n in names}, sums, noise,
                           self.options, saturation, self.out / "reduced" / sci.output, key,
                           raw_sum, stamp, threads_per_worker(self.executor.workers))


@dataclass(frozen=True)
class _ScienceJob:
    """Everything one worker needs to calibrate one science frame and write it."""

    plan: SciencePlan
    master_paths: dict[str, str]
    master_sums: dict[str, str]
    noise: NoiseModel
    options: ReduceOptions
    saturation: float | None
    output: Path
    key: str
    raw_sum: str
    stamp: str
    threads: int


DEFECT_WARN_FRACTION = 0.01
"""A master with more than this fraction of flagged pixels is registered with verdict 'warn'."""


def _register(run: _Run, library: Path | None) -> None:
    """Register the masters this night built in the calibration library, with a verdict."""
    built = [m for m in run.plan.masters if m.library is None]
    if library is None or not built:
        return
    with CalibrationLibrary(library) as calibrations:
        for master in built:
            frame = run.masters[master.name]
            fraction = float(frame.bad.mean())
            verdict, note = "ok", ""
            if fraction > DEFECT_WARN_FRACTION:
                verdict, note = "warn", f"{100 * fraction:.2f}% of pixels flagged"
            calibrations.add(run.result.masters[master.name], night=str(run.plan.raw_dir),
                             verdict=verdict, note=note)


def _science_task(job: _ScienceJob) -> dict[str, Any]:
    """Calibrate one science frame and write it (runs in any executor's worker)."""
    _limit_threads(job.threads)
    masters = {name: _load_master(name, path) for name, path in job.master_paths.items()}
    raw = io.read(job.plan.input.path)
    reduced = calibrate_science(raw, job.plan, masters, job.noise, job.options, job.saturation)
    reduced = _science_provenance(reduced, job, Path(job.output).parent.parent)
    io.write(reduced, job.output)
    return _science_product(job, reduced.header)


def _science_product(job: _ScienceJob, header: fits.Header) -> dict[str, Any]:
    sci = job.plan
    return _product(job.output, "reduced", (sci.input.path,), {sci.input.path: job.raw_sum}, {
        "bias": sci.bias,
        "dark": None if sci.dark is None else {**asdict(sci.dark), "scale": header["DARKSCL"]},
        "flat": sci.flat, "gain": job.noise.gain, "read_noise": job.noise.read_noise,
        "repair": job.options.repair, "cosmics": job.options.cosmics})


def _limit_threads(threads: int) -> None:
    """Let this worker's compiled kernels use ``threads`` threads (no oversubscription)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, stamp: tuple[int, int, int]) -> Frame:
    return io.read(path)


def _load_master(name: str, path: str) -> Frame:
    """Read a master in a worker, once per worker while the file is unchanged."""
    stat = os.stat(path)
    frame = _read_cached(path, (stat.st_ino, stat.st_size, stat.st_mtime_ns))
    if name.startswith("badpix"):
        # A bad-pixel map holds its flags as the image.
        return Frame(np.zeros(frame.shape, np.float32), dq=frame.data.astype(np.uint16))
    return frame


def _hash(description: dict[str, Any]) -> str:
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _master_key(master: MasterPlan, checksums: dict[Path, str], options: ReduceOptions,
                keys: dict[str, str]) -> str:
    """Hash of everything a master depends on: inputs, upstream masters, parameters."""
    upstream = [master.bias] + [d.master for d in master.darks if d is not None]
    return _hash({"name": master.name, "kind": master.kind,
                  "inputs": [checksums[p] for p in master.inputs],
                  "upstream": {n: keys.get(n) for n in upstream if n},
                  "darks": [None if d is None else asdict(d) for d in master.darks],
                  "combine": asdict(_options_for(master, options)),
                  "overscan": options.overscan, "saturation": options.saturation,
                  "gain": options.gain, "read_noise": options.read_noise,
                  "defects": {"bias": None, "dark": options.hot_sigma,
                              "flat": (options.dead_sigma, options.min_flat)}[master.kind],
                  "version": _version()})


def _up_to_date(path: Path, key: str) -> bool:
    """Tell whether ``path`` is a complete product made from the same inputs and parameters."""
    if not path.is_file():
        return False
    try:
        return io.read_header(path).get("CCDRKEY") == key
    except BadInputError:
        return False


def _remove_stale_parts(out: Path) -> None:
    """Remove temporary files a killed run left behind (products are renamed into place)."""
    for folder in (out / "masters", out / "reduced"):
        if folder.is_dir():
            for part in folder.glob(".*.part"):
                part.unlink(missing_ok=True)


def _options_for(master: MasterPlan, options: ReduceOptions) -> CombineOptions:
    return {"bias": options.bias_combine, "dark": options.dark_combine,
            "flat": options.flat_combine}[master.kind]


def _build_master(master: MasterPlan, built: dict[str, Frame], infos: dict[Path, FrameInfo],
                  checksums: dict[Path, str], options: ReduceOptions, executor: Executor
                  ) -> Frame:
    combine_options = _options_for(master, options)
    saturation = _saturation_level(infos[master.inputs[0]], options)
    bias = built.get(master.bias) if master.bias else None
    job = _MasterJob(master.kind, master.inputs,
                     str(built[master.bias].path) if bias is not None else None,
                     tuple(None if d is None else (str(built[d.master].path), d.scale)
                           for d in master.darks),
                     combine_options, saturation, options.overscan, 1)
    result = _combine_in_bands(job, master.setup[0] or infos[master.inputs[0]].shape, executor)
    result = steps.finish_master(master.kind, result, bias=bias, saturation=saturation,
                                 min_flat=options.min_flat)
    if master.kind == "bias":
        frame = result.frame
    elif master.kind == "dark":
        frame = steps.find_hot_pixels(result.frame, k=options.hot_sigma)
    else:
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
    temperatures = [infos[p].temperature for p in master.inputs]
    if all(t is not None for t in temperatures):
        header["CCD-TEMP"] = (round(float(np.mean(temperatures)), 2),
                              "[C] mean sensor temperature of the inputs")
    frame = frame.replace(header=header)
    return frame.with_header({"CCDRED": (_version(), "ccdred version")}, history=history)


@dataclass(frozen=True)
class _MasterJob:
    """What a worker needs to combine rows of one master's stack (paths, not arrays)."""

    kind: str
    inputs: tuple[Path, ...]
    bias: str | None
    darks: tuple[tuple[str, float] | None, ...]
    options: CombineOptions
    saturation: float | None
    overscan: str | None
    threads: int
    rows: tuple[int, int] | None = None


def _combine_in_bands(job: _MasterJob, shape: tuple[int, int], executor: Executor
                      ) -> CombineResult:
    """Combine a master's stack, split in one row band per worker when there are several.

    Bands give the same bits as one combine (`ccdred.combine` statistics use whole frames),
    and a stack too large for one worker's memory still combines.
    """
    rows = shape[0]
    count = max(1, min(executor.workers, rows))
    edges = np.linspace(0, rows, count + 1).astype(int)
    threads = threads_per_worker(executor.workers)
    bands = [replace(job, threads=threads, rows=(int(a), int(b)) if count > 1 else None)
             for a, b in itertools.pairwise(edges)]
    results = dict(executor.map_unordered(_master_band_task, bands))
    return steps.stack_bands([results[i] for i in range(len(bands))])


def _master_band_task(job: _MasterJob) -> CombineResult:
    """Combine rows ``job.rows`` of a master's stack (runs in any executor's worker)."""
    _limit_threads(job.threads)
    bias = _load_master("bias", job.bias) if job.bias else None
    darks = [None if d is None else (_load_master("dark", d[0]), d[1]) for d in job.darks]
    return steps.combine_master(job.kind, job.inputs, bias=bias,
                                darks=darks if job.kind == "flat" else None,
                                options=job.options, saturation=job.saturation,
                                overscan=job.overscan, rows=job.rows)


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


def _badpix_maps(plan: NightPlan, masters: dict[str, Frame]
                 ) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Each setup's bad-pixel map, and the masters it came from."""
    maps: dict[str, tuple[np.ndarray, list[str]]] = {}
    for master in plan.masters:
        if master.kind not in ("dark", "flat"):
            continue
        name = f"badpix{plan.setups.get(master.setup, '')}"
        dq = masters[master.name].dq & np.uint16(Flag.HOT | Flag.DEAD)
        if name in maps:
            maps[name] = (maps[name][0] | dq, [*maps[name][1], master.name])
        else:
            maps[name] = (dq, [master.name])
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


def _master_reference(path: Path, out: Path) -> str:
    """How a product names a master: ``masters/x.fits`` in this run, the full path otherwise."""
    path = Path(path)
    return f"masters/{path.name}" if path.parent == out / "masters" else str(path)


def _science_provenance(frame: Frame, job: _ScienceJob, out: Path) -> Frame:
    sci, noise = job.plan, job.noise
    cards: dict[str, Any] = {"CCDRED": (_version(), "ccdred version"),
                             "CCDRDATE": (job.stamp, "UTC time of reduction"),
                             "CCDRKEY": (job.key, "hash of inputs and parameters"),
                             "RAWFILE": (sci.input.path.name[-68:], "raw input frame"),
                             "RAWSHA": (job.raw_sum, "SHA-256 of the raw input"),
                             "GAIN": (round(noise.gain, 4), "[e-/ADU] gain used"),
                             "GAINSRC": (noise.gain_source[:68], "where the gain came from"),
                             "RDNOISE": (round(noise.read_noise, 3), "[e-] read noise used"),
                             "RNSRC": (noise.read_noise_source[:68], "where read noise came from"),
                             "BUNIT": "adu"}
    history = [f"ccdred {_version()}: calibrated as (raw - bias - dark) / flat"]
    history.extend(_geometry_history(sci.input, job.options))
    refs = {name: _master_reference(Path(path), out) for name, path in job.master_paths.items()}
    for key, name in (("BIAS", sci.bias), ("FLAT", sci.flat)):
        if name:
            cards[f"{key}FILE"] = (refs[name][-68:], f"master {key.lower()}")
            cards[f"{key}SHA"] = (job.master_sums[name], f"SHA-256 of master {key.lower()}")
            history.append(f"{key.lower()}: {refs[name]}")
        else:
            history.append(f"{key.lower()}: none applied")
    if sci.dark:
        cards["DARKFILE"] = (refs[sci.dark.master][-68:], "master dark")
        cards["DARKSHA"] = (job.master_sums[sci.dark.master], "SHA-256 of master dark")
        scale = frame.header["DARKSCL"]
        how = (f"fitted; exposure ratio {frame.header['DARKEXPS']:.5g}"
               if "DARKEXPS" in frame.header else sci.dark.reason)
        history.append(f"dark: {refs[sci.dark.master]} x {scale:.5g} ({how})")
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
        "created": io.reduction_time(),
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
