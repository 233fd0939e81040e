"""``ccdred reduce`` and ``ccdred report``: plan, run and report nights."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .app import (
    app,
    combine_option_group,
    console,
    err_console,
    handle_errors,
    note_first_compile,
    raise_if_interrupted,
)

__all__ = ["reduce", "report_command"]


def _master_extras(master: Any) -> str:
    from ..pipeline.recipes import recipe_for

    recipe = recipe_for(master.kind)
    extras = [f"- {master.bias}"] if master.bias else []
    if recipe.scalable_with_bias:
        extras.append("scales with exposure" if master.scalable else "matched exposure only")
    darks = {(d.master, round(d.scale, 4)) for d in master.darks if d}
    extras += [f"- {name} x {scale:g}" for name, scale in sorted(darks)]
    if any(d is None for d in master.darks):
        extras.append(f"some {recipe.frames}s without dark")
    return "; ".join(extras)


def print_plan(plan: Any) -> None:
    """Print a night's plan: the masters, what serves each science frame, the warnings."""
    masters = Table(title="Masters to build")
    for column in ("master", "from", "with"):
        masters.add_column(column, overflow="fold")
    for m in plan.masters:
        # Names from headers are shown as they are (never read as markup).
        of_filter = f", filter {m.filter!r}" if m.filter is not None else ""
        if m.library is not None:
            masters.add_row(escape(m.file), "calibration library" + escape(of_filter),
                            escape(m.library.reason))
        else:
            masters.add_row(f"masters/{escape(m.filename)}",
                            f"{len(m.inputs)} {m.kind} frames{escape(of_filter)}",
                            escape(_master_extras(m)))
    console.print(masters)
    science = Table(title="Science frames")
    for column in ("frame", "exptime", "filter", "bias", "dark (scale)", "flat"):
        science.add_column(column, overflow="fold")
    for s in plan.science:
        dark = f"{s.dark.master} x {s.dark.scale:.4g}" if s.dark else "[yellow]none[/]"
        science.add_row(escape(s.input.path.name), f"{s.input.exptime:g}",
                        escape(s.input.filter or ""), escape(s.bias or "") or "[yellow]none[/]",
                        escape(dark) if s.dark else dark,
                        escape(s.flat or "") or "[yellow]none[/]")
    console.print(science)
    for info in plan.skipped:
        console.print(f"[red]unusable:[/] {escape(str(info.path))}: {escape(info.error or '')}",
                      soft_wrap=True)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


@app.command()
@handle_errors
@combine_option_group
def reduce(
    raw_dirs: Annotated[list[Path], typer.Argument(
        help="Folder(s) with raw frames: one night each (see --nights).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")],
    combine_options: Any,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")] = False,
    nights: Annotated[bool, typer.Option(
        "--nights",
        help="Each sub-folder of RAW_DIRS holding FITS or XISF files is a night.")] = False,
    repair: Annotated[str, typer.Option(
        help="Which flagged pixels get their neighbours' median: unusable (those calibration "
             "cannot make right: cosmic rays, no data, dead pixels with a flat response under "
             "--dead-response, hot pixels whose noise is over --hot-noise times the sky's), "
             "all, or none. Flags are the same whatever the choice.")] = "unusable",
    no_repair: Annotated[bool, typer.Option("--no-repair", help="Same as --repair none.")
                         ] = False,
    dead_response: Annotated[float, typer.Option(
        help="--repair unusable: repair dead pixels whose flat response is below this.")
                             ] = 0.5,
    hot_noise: Annotated[float, typer.Option(
        help="--repair unusable: repair hot pixels whose noise is over this many times the "
             "sky's.")] = 3.0,
    compress: Annotated[bool, typer.Option(
        "--compress", help="Write reduced frames tile-compressed (Rice; DQ lossless, images to "
                           "1/16 of their noise), without the MASK that repeats DQ: about 5x "
                           "smaller. Read with CCDData.read(path, hdu='SCI').")] = False,
    cosmics: Annotated[bool, typer.Option("--cosmics/--no-cosmics",
                                          help="Detect cosmic rays (L.A.Cosmic).")] = True,
    skip_bad: Annotated[bool, typer.Option("--skip-bad",
                                           help="Go on without unusable files.")] = False,
    hot_sigma: Annotated[float, typer.Option(help="Hot pixel threshold (sigma).")] = 5.0,
    dead_sigma: Annotated[float, typer.Option(help="Dead pixel threshold (sigma).")] = 5.0,
    gain: Annotated[float | None, typer.Option(help="Gain in e-/ADU (overrides).")] = None,
    read_noise: Annotated[float | None, typer.Option(help="Read noise in e- (overrides).")
                          ] = None,
    saturation: Annotated[float | None, typer.Option(help="Raw saturation level in ADU.")
                          ] = None,
    instrument: Annotated[Path | None, typer.Option(
        help="TOML file with the camera's gain, read_noise and saturation (the options above "
             "win over it; it wins over headers).")] = None,
    optimize_dark: Annotated[bool, typer.Option(
        "--optimize-dark", help="Fit each frame's dark factor (least dark pattern left) "
                                "instead of the exposure-time ratio.")] = False,
    overscan: Annotated[str, typer.Option(
        help="Overscan model where headers give BIASSEC: median, mean, poly, or none (no "
             "overscan, no trimming).")] = "median",
    bayer: Annotated[str | None, typer.Option(
        help="Bayer pattern at the first pixel (RGGB, BGGR, GRBG, GBRG) of a colour camera "
             "whose headers do not say (BAYERPAT is read otherwise).")] = None,
    cfa_flat_scaling: Annotated[str, typer.Option(
        help="Colour flats normalised per colour plane (separate: frames keep their colour "
             "balance) or over all pixels (global).")] = "separate",
    units: Annotated[str, typer.Option(
        help="Units of the reduced science frames: adu, or electrons (image and uncertainty "
             "x the gain used, BUNIT='electron'; masters stay in ADU).")] = "adu",
    report: Annotated[bool, typer.Option(
        "--report/--no-report", help="Write OUT/report/index.html (figures, checks).")] = True,
    workers: Annotated[int | None, typer.Option(
        help="Local processes for the tasks and figures (default: every core; 1: this "
             "process only).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Run the tasks on this Dask scheduler, e.g. tcp://host:8786 (workers must see "
             "the same files).")] = None,
    dask_local: Annotated[int | None, typer.Option(
        help="Run the tasks on a Dask LocalCluster of this many workers.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Redo every product, even those that are up to date.")] = False,
    library: Annotated[Path | None, typer.Option(
        help="Calibration library (SQLite) shared between runs; default "
             "OUT/calibrations.sqlite.")] = None,
    validity_days: Annotated[float, typer.Option(
        help="Library masters serve nights at most this many days away.")] = 30.0,
    temperature_tolerance: Annotated[float, typer.Option(
        help="Library darks serve nights within this many deg C.")] = 2.0,
) -> None:
    """Reduce nights: plan, build masters, calibrate every science frame, write a manifest.

    A re-run skips products that are up to date and redoes the rest; a night that lacks a
    calibration takes the best master from the library, and the plan says which and why.
    """
    from ..library import Rules
    from ..pipeline import LIBRARY_NAME, find_nights, make_executor, plan_night, reduce_nights
    from ..pipeline.executors import check_executor

    check_executor(workers, scheduler=scheduler, dask_local=dask_local)
    options = reduce_options(combine=combine_options, hot_sigma=hot_sigma,
                             dead_sigma=dead_sigma, repair="none" if no_repair else repair,
                             dead_response=dead_response, hot_noise=hot_noise,
                             compress=compress,
                             cosmics=cosmics, gain=gain,
                             read_noise=read_noise, saturation=saturation, skip_bad=skip_bad,
                             overscan=overscan, optimize_dark=optimize_dark,
                             instrument=instrument, bayer=bayer,
                             cfa_flat_scaling=cfa_flat_scaling, units=units)
    rules = Rules(validity_days=validity_days, temperature_tolerance=temperature_tolerance)
    found = find_nights(raw_dirs, out, subfolders=nights)
    library_path = library or out / LIBRARY_NAME
    for night in found:
        if len(found) > 1:
            console.rule(f"night {night.raw_dir} -> {night.out_dir}")
        print_plan(plan_night(night.raw_dir, night.out_dir, library=library_path, rules=rules,
                              bayer=options.bayer, saturation=options.saturation))
    if len(found) > 1:
        console.print("Each night's masters are registered in the library first; then every "
                      "night is planned again, so a night lacking a calibration can take "
                      "another night's (the choices are printed after the run).",
                      soft_wrap=True)
    if dry_run:
        return
    note_first_compile()
    draw_in_run = None
    if report:  # each frame's section drawn by the worker that writes it
        from ..report import draw_in_run, write_report
    executor = make_executor(workers, scheduler=scheduler, dask_local=dask_local)
    try:
        with progress_bars() as progress:
            results = reduce_nights(found, library_path, options=options, progress=progress,
                                    executor=executor, force=force, rules=rules,
                                    on_reduced=draw_in_run)
            pages = []
            if report:
                pages = [write_report(r.out_dir, executor=executor, progress=progress)
                         for r in results]
    except BaseException as err:
        executor.close(stop=isinstance(err, KeyboardInterrupt))  # Ctrl-C: stop the workers now
        raise
    executor.close()
    _print_results(results, len(found) > 1)
    for page in pages:
        console.print(f"report {page}")
    console.print(f"calibration library {library_path} ({executor.description})")


def _print_results(results: list[Any], many: bool) -> None:
    for result in results:
        for master in result.plan.masters:
            if master.library is not None and many:
                console.print(f"{result.out_dir.name}: {master.name} from the library: "
                              f"{master.library.path} ({master.library.reason})", soft_wrap=True)
        for name, model in result.noise.items():
            console.print(f"gain {model.gain:.3f} e-/ADU ({model.gain_source}); read noise "
                          f"{model.read_noise:.2f} e- ({model.read_noise_source})"
                          + (f" [{name}]" if name else ""), soft_wrap=True)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
        made = len(result.rebuilt)
        borrowed = sum(m.library is not None for m in result.plan.masters)
        kept = len(result.masters) + len(result.reduced) - made - borrowed
        console.print(f"{result.out_dir}: {len(result.masters)} masters, {len(result.reduced)} "
                      f"reduced frames ({made} made, {kept} up to date and kept"
                      + (f", {borrowed} from the library" if borrowed else "")
                      + f"), manifest {result.manifest}", soft_wrap=True)


UNIT_NAMES = {"adu": "adu", "electron": "electron", "electrons": "electron", "e-": "electron",
              "e": "electron"}
"""What ``--units`` accepts, and the `ReduceOptions.units` each means."""


def reduce_options(*, combine: Any, overscan: str, instrument: Path | None,
                   gain: float | None, read_noise: float | None, saturation: float | None,
                   bayer: str | None, units: str = "adu", **rest: Any) -> Any:
    """`ReduceOptions` from the command line: an instrument file fills what is not given."""
    from ..pipeline import ReduceOptions

    if units.lower() not in UNIT_NAMES:
        raise ValueError(f"--units must be adu or electrons, got {units!r}")

    settings = {"gain": gain, "read_noise": read_noise, "saturation": saturation,
                "bayer": bayer}
    sources = {}
    if instrument is not None:
        from ..instruments import load_instrument

        for key, value in load_instrument(instrument).items():
            if settings[key] is None:
                settings[key] = value
                sources[key] = f"instrument file {instrument.name}"
    sources.pop("bayer", None)
    return ReduceOptions(combine=combine, sources=sources, units=UNIT_NAMES[units.lower()],
                         overscan=None if overscan == "none" else overscan, **settings, **rest)


@contextlib.contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """Yield a ``progress(stage, done, total)`` that draws one bar per stage on stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<10}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err_console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            raise_if_interrupted()  # between tasks: an interrupt lost in a finaliser ends here
            if stage not in tasks or bar.tasks[tasks[stage]].finished and done < total:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


@app.command(name="report")
@handle_errors
def report_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder written by ccdred reduce.")],
    workers: Annotated[int | None, typer.Option(
        help="Processes for the figures (default: every core; 1: this process only).")
    ] = None,
) -> None:
    """(Re)build OUT_DIR/report/index.html: plan, masters, science frames, checks."""
    from ..pipeline import make_executor
    from ..report import write_report

    executor = make_executor(workers)
    try:
        with progress_bars() as progress:
            page = write_report(out_dir, executor=executor, progress=progress)
    except BaseException as err:
        executor.close(stop=isinstance(err, KeyboardInterrupt))
        raise
    executor.close()
    console.print(f"report: {page}")
