"""Run a night's plan: build the masters, calibrate every science frame, write the manifest."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .. import io
from ..errors import BadInputError
from ..frame import Frame
from ..inventory import FrameInfo, describe_file
from ..library import CalibrationLibrary
from .executors import Executor, InProcess, threads_per_worker
from .masters import MasterBuild, badpix_maps, build_master, glow_warnings, master_key
from .noise import NoiseModel, noise_model
from .options import ReduceOptions
from .plan import MasterPlan, NightPlan, SciencePlan
from .planner import LIBRARY_NAME, library_path_for, plan_night
from .products import (
    BADPIX,
    MASTER,
    Input,
    Manifest,
    Product,
    made,
    product_key,
    remove_stale_parts,
    up_to_date,
    version,
    write_manifest,
)
from .recipes import recipe_for
from .science import SCIENCE_STEPS, ReducedHook, ScienceJob, science_product, science_task
from .sensor import Sensor, analyse_sensor
from .tasks import MasterRef

__all__ = ["NightResult", "plan_night", "reduce_night", "run_night", "LIBRARY_NAME", "Progress",
           "validate_plan"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances."""

DEFECT_WARN_FRACTION = 0.01
"""A master with more than this fraction of flagged pixels is registered with verdict 'warn'."""


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
    warnings: list[str] = field(default_factory=list)
    """What the run found that the plan could not know (from the masters' pixels)."""


def reduce_night(raw_dir: str | Path, out_dir: str | Path, *,
                 options: ReduceOptions = ReduceOptions(), progress: Progress | None = None,
                 plan: NightPlan | None = None, executor: Executor | None = None,
                 force: bool = False, masters_only: bool = False,
                 library: str | Path | None = None,
                 on_reduced: ReducedHook | None = None) -> NightResult:
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
    on_reduced : callable, optional
        Called in the worker with each science frame it wrote (`ReducedHook`): the night
        report passes ``ccdred.report.draw_in_run`` to draw each frame's section there.

    Raises
    ------
    BadInputError
        Some inputs are unusable (unless ``options.skip_bad``), or there is nothing to do.
    """
    return run_night(raw_dir, out_dir, options=options, progress=progress, plan=plan,
                     executor=executor, force_masters=force, force_science=force,
                     masters_only=masters_only, library=library, on_reduced=on_reduced)


def run_night(raw_dir: str | Path, out_dir: str | Path, *, options: ReduceOptions,
              progress: Progress | None, plan: NightPlan | None, executor: Executor | None,
              force_masters: bool, force_science: bool, masters_only: bool,
              library: str | Path | None, on_reduced: ReducedHook | None = None
              ) -> NightResult:
    """`reduce_night`, with masters and science frames forced apart (for many nights)."""
    out = Path(out_dir)
    plan = plan or plan_night(raw_dir, out, library=library, bayer=options.bayer,
                              saturation=options.saturation)
    validate_plan(plan, options)
    _check_writable(out)
    library_path = library_path_for(library, out)
    if library_path is not None:
        CalibrationLibrary(library_path).close()  # usable (or made) before any work
    remove_stale_parts(out)
    report = progress or (lambda stage, done, total: None)
    run = _Run(plan, out, options, executor or InProcess(), force_masters, force_science,
               _raw_infos(plan), NightResult(plan=plan, out_dir=out), on_reduced)
    total = len(plan.masters)
    for done, master in enumerate(plan.masters):
        report("masters", done, total)
        run.master(master)
    report("masters", total, total)
    _register(run, library_path)
    run.badpix_maps()
    for setup in plan.setups:
        run.noise_for(setup)
    if masters_only:
        return run.result
    run.science(report)
    run.result.manifest = write_manifest(out, run.manifest())
    return run.result


def _raw_infos(plan: NightPlan) -> dict[Path, FrameInfo]:
    infos = {i.path: i for i in plan.frames}
    infos.update({i.input.path: i.input for i in plan.science})
    for master in plan.masters:
        for path in master.inputs:
            if path not in infos:
                infos[path] = describe_file(path, plan.raw_dir)
    return infos


def validate_plan(plan: NightPlan, options: ReduceOptions) -> None:
    """Refuse a plan with unusable inputs (unless ``options.skip_bad``) or nothing to do."""
    if plan.skipped and not options.skip_bad:
        lines = "\n".join(f"  {i.path}: {i.error}" for i in plan.skipped)
        raise BadInputError(plan.raw_dir,
                            f"{len(plan.skipped)} unusable file(s); nothing was written "
                            f"(use --skip-bad to go on without them):\n{lines}")
    if not plan.masters and not plan.science:
        raise BadInputError(plan.raw_dir, "no bias, dark, flat or science frames found")
    for master in plan.masters:  # a borrowed master must be as registered, before any work
        if master.library is not None:
            _check_borrowed(Path(master.library.path), master.library.sha256)


def _check_borrowed(path: Path, registered: str) -> str:
    """Return a library master's checksum, refusing one missing or changed since registered."""
    if not path.is_file():
        raise BadInputError(path, "library master missing: remove it from the library "
                                  "('ccdred library remove') or restore the file")
    actual = io.sha256(path)
    if actual != registered:
        raise BadInputError(path, f"library master changed since it was registered (SHA-256 "
                                  f"{actual[:12]}..., library {registered[:12]}...): "
                                  f"re-register it with 'ccdred library add'")
    return actual


def _check_writable(out: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(out, f"cannot write here: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(out, f"cannot write here: no permission to write in {existing}")


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
    result: NightResult
    on_reduced: ReducedHook | None
    checksums: dict[Path, str] = field(init=False)
    masters: dict[str, Frame] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    sensors: dict[tuple[Any, ...], Sensor] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    """Every master and bad-pixel map, by name (checksums hashed once, when written or kept)."""
    reduced: list[Product] = field(default_factory=list)

    def __post_init__(self) -> None:
        # hashlib releases the GIL: the raw frames are hashed by a few threads at once.
        with ThreadPoolExecutor(4) as pool:
            self.checksums = dict(zip(self.infos, pool.map(io.sha256, self.infos),
                                      strict=True))

    def group(self, setup: tuple[Any, ...]) -> list[FrameInfo]:
        """Return the raw frames of one setup."""
        return [i for i in self.infos.values() if i.setup == setup]

    def sensor_for(self, setup: tuple[Any, ...]) -> Sensor:
        """Return the setup's ADC step and saturation, found once from its raw frames."""
        if setup not in self.sensors:
            self.sensors[setup] = analyse_sensor(self.group(setup), self.options.saturation)
        return self.sensors[setup]

    def noise_for(self, setup: tuple[Any, ...]) -> NoiseModel:
        """Return the setup's noise model, made once, when a master or frame first needs it."""
        suffix = self.plan.setups.get(setup, "")
        if suffix not in self.result.noise:
            bias = next((self.masters.get(m.name) for m in self.plan.masters
                         if m.kind == "bias" and m.setup == setup), None)
            zeros = [m for m in self.plan.masters if m.setup == setup and m.kind in ("bias",
                                                                                    "dark")]
            self.result.noise[suffix] = noise_model(self.group(setup), bias, self.options,
                                                    self.sensor_for(setup), self._flat_zero,
                                                    needs_zero=not zeros)
        return self.result.noise[suffix]

    def _flat_zero(self, flat: FrameInfo) -> Frame | None:
        """Return what a flat's pedestal and dark are removed with: its bias, dark(-flat)."""
        master = next((m for m in self.plan.masters if flat.path in m.inputs), None)
        if master is None:
            return None
        parts = [self.masters[master.bias].data] if master.bias in self.masters else []
        choice = master.darks[master.inputs.index(flat.path)] if master.darks else None
        if choice is not None and choice.master in self.masters:
            parts.append(self.masters[choice.master].data * np.float32(choice.scale))
        return Frame(np.sum(parts, axis=0)) if parts else None

    def master(self, master: MasterPlan) -> None:
        """Build one master (or take it from the library, or keep it when up to date)."""
        if master.library is not None:
            self._borrow(master)
            return
        key = master_key(master, self.options, self.checksums, self.keys,
                         self.sensor_for(master.setup))
        path = self.out / "masters" / master.filename
        if self.force_masters or not up_to_date(path, key):
            build = MasterBuild(self.masters, self.infos, self.checksums, self.executor,
                                self.noise_for, self.sensor_for)
            frame = build_master(master, self.options, build)
            io.write(frame.with_header({"CCDRKEY": (key, "hash of inputs and parameters")}),
                     path)
            self.result.rebuilt.append(path)
        # Read back: every later step, in any executor, uses the master as written.
        self.masters[master.name] = io.read(path)
        self.keys[master.name] = key
        self.result.masters[master.name] = path
        self.products[master.name] = made(
            path, MASTER, master.name, kind=master.kind,
            inputs=[Input(p, self.checksums[p]) for p in master.inputs], parameters={
                "combine": self.options.combine.replace(
                    **recipe_for(master.kind).combine).describe(),
                "exptime": master.exptime, "filter": master.filter,
                "darks": [None if d is None else asdict(d) for d in master.darks]})

    def _borrow(self, master: MasterPlan) -> None:
        choice = master.library
        path = Path(choice.path)
        actual = _check_borrowed(path, choice.sha256)
        self.masters[master.name] = io.read(path)
        self.keys[master.name] = actual
        self.result.masters[master.name] = path
        self.products[master.name] = Product(path, MASTER, master.name, actual, master.kind,
                                             parameters={"library": asdict(choice)})

    def badpix_maps(self) -> None:
        """Write each setup's bad-pixel map: the defects of its masters."""
        for name, (dq, sources) in badpix_maps(self.plan, self.masters).items():
            key = product_key({"badpix": [self.keys[s] for s in sources],
                               "hot_sigma": self.options.hot_sigma,
                               "dead_sigma": self.options.dead_sigma})
            path = self.out / "masters" / f"{name}.fits"
            if self.force_masters or not up_to_date(path, key):
                io.write_dq(dq, path, fits.Header({"CCDRKEY": key}))
                self.result.rebuilt.append(path)
            self.masters[name] = Frame(np.zeros(dq.shape, np.float32), dq=dq)
            self.result.masters[name] = path
            self.products[name] = made(path, BADPIX, name, parameters={
                "hot_sigma": self.options.hot_sigma, "dead_sigma": self.options.dead_sigma})

    def science(self, report: Progress) -> None:
        """Calibrate every science frame that is not up to date, as executor tasks."""
        self.result.warnings.extend(glow_warnings(self.plan, self.masters,
                                                  self.options.optimize_dark))
        stamp = io.reduction_time()
        jobs, products = [], {}
        for index, sci in enumerate(self.plan.science):
            job = self._science_job(sci, stamp)
            if not self.force_science and up_to_date(job.output, job.key):
                products[index] = science_product(job, io.read_header(job.output))
            else:
                jobs.append((index, job))
        total = len(self.plan.science)
        done = total - len(jobs)
        report("science", done, total)
        for position, product in self.executor.map_unordered(science_task,
                                                             [job for _, job in jobs]):
            products[jobs[position][0]] = product
            self.result.rebuilt.append(product.path)
            done += 1
            report("science", done, total)
        self.reduced = [products[index] for index in range(total)]
        self.result.reduced = [p.path for p in self.reduced]

    def _science_job(self, sci: SciencePlan, stamp: str) -> ScienceJob:
        noise = self.result.noise[self.plan.setups.get(sci.input.setup, "")]
        names = [n for n in (sci.bias, sci.dark.master if sci.dark else None, sci.flat,
                             sci.badpix) if n and n in self.products]
        refs = tuple(MasterRef(n, str(self.products[n].path), self.products[n].role,
                               self.products[n].sha256) for n in names)
        saturation = self.sensor_for(sci.input.setup).saturation
        raw_sum = self.checksums[sci.input.path]
        key = product_key({"raw": raw_sum, "masters": {r.name: r.sha256 for r in refs},
                           "noise": asdict(noise), "options": self.options.as_dict(),
                           "saturation": saturation,
                           "dark": asdict(sci.dark) if sci.dark else None,
                           "steps": SCIENCE_STEPS})
        return ScienceJob(sci, refs, noise, self.options, saturation,
                          self.out / "reduced" / sci.output, key, raw_sum, stamp,
                          threads_per_worker(self.executor.workers), self.on_reduced)

    def manifest(self) -> Manifest:
        """Return the manifest of this run: every product, in plan order."""
        return Manifest(ccdred_version=version(), created=io.reduction_time(),
                        raw_dir=str(self.plan.raw_dir), options=self.options.as_dict(),
                        noise={k or "default": asdict(v) for k, v in self.result.noise.items()},
                        plan=self.plan.to_json(),
                        products=(*self.products.values(), *self.reduced),
                        warnings=tuple(self.result.warnings))


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
