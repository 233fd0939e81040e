"""Build one master from its recipe: combined in row bands on the executor, then finished."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .. import io, steps
from ..flags import Flag
from ..frame import Frame
from ..instruments.camera import bayer_cards
from ..inventory import FrameInfo
from ..stacking import CombineOptions, CombineResult
from .executors import Executor, threads_per_worker
from .noise import NoiseModel, read_noise_cards
from .options import OptionsView, ReduceOptions
from .plan import MasterPlan, NightPlan
from .products import BADPIX, product_key, version
from .recipes import Recipe, recipe_for
from .sensor import Sensor
from .tasks import MasterRef, limit_threads, load_master

__all__ = ["MasterBuild", "build_master", "master_key", "combine_master", "badpix_maps",
           "geometry_history", "median_level", "glow_warnings"]


@dataclass(frozen=True)
class MasterBuild:
    """What building a night's masters needs from the run."""

    built: Mapping[str, Frame]
    """Masters already built (or borrowed), by name: what later ones subtract."""
    infos: Mapping[Path, FrameInfo]
    checksums: Mapping[Path, str]
    executor: Executor
    noise: Callable[[tuple[Any, ...]], NoiseModel]
    """The noise model of a readout setup."""
    sensor: Callable[[tuple[Any, ...]], Sensor]
    """The ADC step and saturation of a readout setup (the option, else from the frames)."""


def master_key(master: MasterPlan, options: ReduceOptions, checksums: Mapping[Path, str],
               upstream: Mapping[str, str], sensor: Sensor | None = None) -> str:
    """Hash of everything a master depends on: inputs, masters subtracted, its recipe's options.

    ``upstream`` holds the keys of the masters built before it; ``sensor`` the setup's ADC
    step and saturation as the frames showed them.
    """
    recipe = recipe_for(master.kind)
    subtracted = [master.bias] + [d.master for d in master.darks if d is not None]
    return product_key({"name": master.name, "kind": master.kind,
                        "inputs": [checksums[p] for p in master.inputs],
                        "upstream": {n: upstream.get(n) for n in subtracted if n},
                        "darks": [None if d is None else _dark_json(d) for d in master.darks],
                        "options": OptionsView(options, recipe.key_fields).values(),
                        "sensor": None if sensor is None else asdict(sensor)})


def _dark_json(choice: Any) -> dict[str, Any]:
    return {"master": choice.master, "scale": choice.scale, "reason": choice.reason}


def build_master(master: MasterPlan, options: ReduceOptions, build: MasterBuild) -> Frame:
    """Combine, finish and describe one master as its recipe says (nothing is written)."""
    recipe = recipe_for(master.kind)
    view = OptionsView(options, recipe.key_fields)
    saturation = build.sensor(master.setup).saturation
    bias = build.built[master.bias] if master.bias else None
    job = _MasterJob(master.kind, master.inputs,
                     str(bias.path) if bias is not None else None,
                     tuple(None if d is None else (str(build.built[d.master].path), d.scale,
                                                   d.level_only)
                           for d in master.darks),
                     view.combine, saturation, view.overscan, 1)
    shape = master.setup[0] or build.infos[master.inputs[0]].shape
    cfa = master.setup[5] if len(master.setup) > 5 else None
    result = recipe.finish(_combine_in_bands(job, shape, build.executor), bias, saturation, view,
                           cfa)
    frame = result.frame if recipe.defects is None else recipe.defects(result.frame, view, cfa)
    frame = frame.replace(header=_header(master, recipe, frame, view, build))
    if frame.variance is None or np.isnan(frame.variance[~frame.bad]).any():
        frame = _modelled_variance(frame, recipe, len(master.inputs), build.noise(master.setup))
    if recipe.records_read_noise:
        frame = frame.with_header(read_noise_cards([build.infos[p] for p in master.inputs],
                                                   view))
    return frame


def _header(master: MasterPlan, recipe: Recipe, frame: Frame, view: OptionsView,
            build: MasterBuild) -> fits.Header:
    headers = [io.read_header(p, check_data=False) for p in master.inputs]  # checked at scan
    combine_options = _combine_options(recipe, view.combine)
    header = steps.master_header(headers, [p.name for p in master.inputs], kind=master.kind,
                                 exptime=master.exptime if recipe.represents_exposure else None,
                                 options=combine_options,
                                 checksums=[build.checksums[p] for p in master.inputs])
    history = [f"ccdred {version()}: master {master.kind} from {len(master.inputs)} frames"]
    geometry_notes = geometry_history(build.infos[master.inputs[0]], view.overscan)
    if geometry_notes:
        # The master is already trimmed: its inputs' sections no longer describe it.
        for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
            header.remove(key, ignore_missing=True)
        history.extend(geometry_notes)
    if master.bias:
        history.append(f"bias subtracted: masters/{master.bias}.fits")
    cfa = master.setup[5] if len(master.setup) > 5 else None
    for key, value in {**bayer_cards(cfa), **recipe.cards(frame, master, view)}.items():
        header[key] = value
    for path, choice in zip(master.inputs, master.darks, strict=False):
        if choice is not None and choice.level_only:
            history.append(f"{path.name}: pedestal = median of masters/{choice.master}.fits")
        elif choice is not None:
            history.append(f"{path.name}: dark masters/{choice.master}.fits x {choice.scale:.5g}")
    history.extend(recipe.notes)
    temperatures = [build.infos[p].temperature for p in master.inputs]
    if all(t is not None for t in temperatures):
        header["CCD-TEMP"] = (round(float(np.mean(temperatures)), 2),
                              "[C] mean sensor temperature of the inputs")
    described = frame.replace(header=header).with_header(
        {"CCDRED": (version(), "ccdred version")}, history=history)
    return described.header


def _modelled_variance(frame: Frame, recipe: Recipe, n: int, noise: NoiseModel) -> Frame:
    """Fill the variance a stack too small to measure it (a single frame) left unknown.

    The recipe's noise model gives it: read noise, plus Poisson noise of the signal.
    """
    model = recipe.variance(frame, n, noise)
    if model is None:
        return frame
    current = frame.variance if frame.variance is not None else np.full(frame.shape, np.nan)
    variance = np.where(np.isnan(current), model, current).astype(np.float32)
    return frame.replace(variance=variance).with_header(history=[
        f"variance from the noise model where {n} frame(s) could not measure it"])


def _combine_options(recipe: Recipe, options: CombineOptions) -> CombineOptions:
    return options.replace(**recipe.combine) if recipe.combine else options


@dataclass(frozen=True)
class _MasterJob:
    """What a worker needs to combine rows of one master's stack (paths, not arrays)."""

    kind: str
    inputs: tuple[Path, ...]
    bias: str | None
    darks: tuple[tuple[str, float, bool] | None, ...]
    """Each input's dark: (path, scale, only its median level), or None."""
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
    limit_threads(job.threads)
    bias = load_master(MasterRef("bias", job.bias, "master", "")) if job.bias else None
    darks = [None if d is None else (_dark_for(d[0], d[2]), d[1]) for d in job.darks]
    return combine_master(job.kind, job.inputs, bias=bias, darks=darks, options=job.options,
                          saturation=job.saturation, overscan=job.overscan, rows=job.rows)


def _dark_for(path: str, level_only: bool) -> Frame:
    """Return a master dark, or (``level_only``) a frame of its median level: the pedestal."""
    dark = load_master(MasterRef("dark", path, "master", ""))
    return dark if not level_only else Frame(np.full(dark.shape, median_level(dark), np.float32))


def median_level(frame: Frame) -> float:
    """Return the median of a master's good pixels (its level, pedestal included)."""
    return float(np.median(frame.data[~frame.bad]))


def combine_master(kind: str, inputs: Sequence[object], *, bias: Frame | None = None,
                   darks: Sequence[tuple[Frame, float] | None] | None = None,
                   options: CombineOptions = CombineOptions(), saturation: float | None = None,
                   overscan: str | None = None, rows: tuple[int, int] | None = None
                   ) -> CombineResult:
    """Combine a master's stack as its recipe says, before it is finished.

    The bias is subtracted only when the recipe of ``kind`` says so, each input's dark only
    when it takes one, and the recipe's own combine settings (the flats' median scaling) are
    added to ``options``. With ``rows=(start, stop)``, only that band (see `ccdred.combine`).
    """
    recipe = recipe_for(kind)
    return steps.combine_calibrated(
        inputs, bias=bias if recipe.subtract_bias else None,
        darks=darks if recipe.dark_kinds and darks else None,
        options=_combine_options(recipe, options), saturation=saturation, overscan=overscan,
        rows=rows)


def badpix_maps(plan: NightPlan, masters: Mapping[str, Frame]
                ) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Each setup's bad-pixel map: the defects (per recipe) of its masters, and their names."""
    maps: dict[str, tuple[np.ndarray, list[str]]] = {}
    for master in plan.masters:
        flag = recipe_for(master.kind).defect_flag
        if flag is None:
            continue
        name = f"{BADPIX}{plan.setups.get(master.setup, '')}"
        dq = masters[master.name].dq & np.uint16(Flag.HOT | Flag.DEAD)
        if name in maps:
            maps[name] = (maps[name][0] | dq, [*maps[name][1], master.name])
        else:
            maps[name] = (dq, [master.name])
    return maps


def glow_warnings(plan: NightPlan, masters: Mapping[str, Frame], optimize_dark: bool
                  ) -> list[str]:
    """Warn where a dark with amp glow is scaled to another exposure (glow does not scale)."""
    scaled: dict[str, list[str]] = {}
    warnings: list[str] = []
    for sci in plan.science:
        dark = sci.dark
        if dark is None or dark.level_only or abs(dark.scale - 1.0) < 1e-6:
            continue
        if masters[dark.master].header.get("DARKGLOW", False):
            scaled.setdefault(dark.master, []).append(sci.input.path.name)
    for name, frames in scaled.items():
        glow = masters[name].header.get("GLOWADU", 0.0)
        fitted = ("; --optimize-dark fits the dark current's factor, not the glow's"
                  if optimize_dark else "")
        warnings.append(
            f"{name} shows amp glow ({glow:g} ADU above its median) and is scaled for "
            f"{len(frames)} frame(s), e.g. {frames[0]}: glow does not scale with exposure "
            f"like dark current, so some is left or over-subtracted; take darks of the "
            f"lights' exposure{fitted}")
    return warnings


def geometry_history(info: FrameInfo, overscan: str | None) -> list[str]:
    """HISTORY lines for the overscan and trim applied to a raw frame (none if neither)."""
    if overscan is None:
        return []
    lines = []
    if info.overscan:
        lines.append(f"overscan {info.overscan} subtracted ({overscan} per row)")
    if info.data_shape and info.shape and info.data_shape != info.shape:
        lines.append(f"trimmed from {info.shape[1]}x{info.shape[0]} to "
                     f"{info.data_shape[1]}x{info.data_shape[0]}")
    return lines
