"""The ``ccdred`` command: a thin layer over the Python API.

Exit status: 0 success, 1 the work failed, 2 bad input or bad arguments (nothing written).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

app = typer.Typer(
    name="ccdred",
    help=("Reduce a night of raw CCD frames into science-ready images.\n\n"
          "Exit status: 0 success; 1 the work failed; 2 bad input or arguments "
          "(nothing written)."),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import BadInputError, WorkerLostError

        try:
            return func(*args, **kwargs)
        except WorkerLostError as err:
            err_console.print(f"[bold red]failed:[/] {err}", markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
        except BadInputError as err:
            err_console.print(f"[bold red]error:[/] {err}", markup=True, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (ValueError, TypeError) as err:
            err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as err:
            err_console.print(f"[bold red]failed:[/] {err}", soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def _summary_line(path: Path) -> str:
    from .inventory import describe_file

    info = describe_file(path)
    kind = (info.kind or "unknown").upper()
    shape = f"{info.shape[1]}x{info.shape[0]}" if info.shape else "?"
    where = info.telescope or info.instrument or "unknown telescope"
    exposure = f"{info.exptime}s exposure" if info.exptime is not None else "no exposure time"
    return f"{kind} ({shape}) taken with {where} on {info.date or 'unknown date'} ({exposure})"


@app.command()
@_handle_errors
def info(files: Annotated[list[Path], typer.Argument(help="FITS files to describe.")],
         header: Annotated[bool, typer.Option("--header", help="Print the whole header.")] = False
         ) -> None:
    """Print one summary line per file (type, size, telescope, date, exposure)."""
    from .errors import BadInputError
    from .io import read_header

    failed = False
    for path in files:
        try:
            if header:
                console.print(f"[bold]{path}[/]")
                console.print(read_header(path).tostring(sep="\n", padding=False), markup=False)
            else:
                read_header(path)
                console.print(f"{path.name}: {_summary_line(path)}", markup=False)
        except BadInputError as err:
            err_console.print(f"error: {err}", markup=False)
            failed = True
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
@_handle_errors
def scan(raw_dir: Annotated[Path, typer.Argument(help="Folder searched recursively.")],
         as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False
         ) -> None:
    """List every FITS file with its detected type, exposure, filter, binning, shape, date."""
    from .inventory import scan as scan_dir

    infos = scan_dir(raw_dir)
    if as_json:
        sys.stdout.write(json.dumps([i.to_json() for i in infos], indent=2) + "\n")
        return
    table = Table(title=f"{len(infos)} FITS files in {raw_dir}")
    for column in ("file", "type", "exptime", "filter", "bin", "shape", "temp", "date", "object"):
        table.add_column(column, overflow="fold")
    for i in infos:
        shape = f"{i.shape[1]}x{i.shape[0]}" if i.shape else ""
        kind = i.kind if i.ok else f"[red]{i.kind or '?'}: {i.error}[/]"
        table.add_row(str(i.path.relative_to(raw_dir)), kind,
                      "" if i.exptime is None else f"{i.exptime:g}", i.filter or "",
                      f"{i.binning[0]}x{i.binning[1]}", shape,
                      "" if i.temperature is None else f"{i.temperature:.1f}", i.date or "",
                      i.object or "")
    console.print(table)
    counts: dict[str, int] = {}
    for i in infos:
        key = i.kind if i.ok else "unusable"
        counts[key] = counts.get(key, 0) + 1
    console.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


def _print_plan(plan: Any) -> None:
    masters = Table(title="Masters to build")
    for column in ("master", "from", "with"):
        masters.add_column(column, overflow="fold")
    for m in plan.masters:
        if m.library is not None:
            masters.add_row(m.file, "calibration library", m.library.reason)
            continue
        extras = []
        if m.bias:
            extras.append(f"- {m.bias}")
        if m.kind == "dark":
            extras.append("scales with exposure" if m.scalable else "matched exposure only")
        if m.kind == "flat":
            darks = {(d.master, round(d.scale, 4)) for d in m.darks if d}
            extras += [f"- {name} x {scale:g}" for name, scale in sorted(darks)]
            if any(d is None for d in m.darks):
                extras.append("some flats without dark")
        masters.add_row(f"masters/{m.filename}", f"{len(m.inputs)} {m.kind} frames",
                        "; ".join(extras))
    console.print(masters)
    science = Table(title="Science frames")
    for column in ("frame", "exptime", "filter", "bias", "dark (scale)", "flat"):
        science.add_column(column, overflow="fold")
    for s in plan.science:
        dark = f"{s.dark.master} x {s.dark.scale:.4g}" if s.dark else "[yellow]none[/]"
        science.add_row(s.input.path.name, f"{s.input.exptime:g}", s.input.filter or "",
                        s.bias or "[yellow]none[/]", dark, s.flat or "[yellow]none[/]")
    console.print(science)
    for info in plan.skipped:
        console.print(f"[red]unusable:[/] {info.path}: {info.error}", soft_wrap=True)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


@app.command()
@_handle_errors
def reduce(
    raw_dirs: Annotated[list[Path], typer.Argument(
        help="Folder(s) with raw frames: one night each (see --nights).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")] = False,
    nights: Annotated[bool, typer.Option(
        "--nights", help="Each sub-folder of RAW_DIRS holding FITS files is a night.")] = False,
    repair: Annotated[bool, typer.Option("--repair/--no-repair",
                                         help="Repair flagged pixels cosmetically.")] = True,
    cosmics: Annotated[bool, typer.Option("--cosmics/--no-cosmics",
                                          help="Detect cosmic rays (L.A.Cosmic).")] = True,
    skip_bad: Annotated[bool, typer.Option("--skip-bad",
                                           help="Go on without unusable files.")] = False,
    method: Annotated[str, typer.Option(help="Combine estimator: median, mean.")] = "mean",
    reject: Annotated[str, typer.Option(help="Rejection: sigclip, minmax, none, ...")] = "sigclip",
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
    import os

    from .library import Rules
    from .pipeline import LIBRARY_NAME, find_nights, make_executor, plan_night, reduce_nights

    options = _reduce_options(method=method, reject=reject, hot_sigma=hot_sigma,
                              dead_sigma=dead_sigma, repair=repair, cosmics=cosmics, gain=gain,
                              read_noise=read_noise, saturation=saturation, skip_bad=skip_bad,
                              overscan=overscan, optimize_dark=optimize_dark,
                              instrument=instrument)
    rules = Rules(validity_days=validity_days, temperature_tolerance=temperature_tolerance)
    found = find_nights(raw_dirs, out, subfolders=nights)
    library_path = library or out / LIBRARY_NAME
    for night in found:
        if len(found) > 1:
            console.rule(f"night {night.raw_dir} -> {night.out_dir}")
        _print_plan(plan_night(night.raw_dir, night.out_dir, library=library_path, rules=rules))
    if len(found) > 1:
        console.print("Each night's masters are registered in the library first; then every "
                      "night is planned again, so a night lacking a calibration can take "
                      "another night's (the choices are printed after the run).",
                      soft_wrap=True)
    if dry_run:
        return
    executor = make_executor(workers, scheduler=scheduler, dask_local=dask_local)
    figure_workers = workers or os.cpu_count() or 1
    try:
        with _progress_bars() as progress:
            results = reduce_nights(found, library_path, options=options, progress=progress,
                                    executor=executor, force=force, rules=rules)
            pages = []
            if report:
                from .report import write_report

                pages = [write_report(r.out_dir, workers=figure_workers, progress=progress)
                         for r in results]
    finally:
        executor.close()
    for result in results:
        for master in result.plan.masters:
            if master.library is not None and len(found) > 1:
                console.print(f"{result.out_dir.name}: {master.name} from the library: "
                              f"{master.library.path} ({master.library.reason})", soft_wrap=True)
        for name, model in result.noise.items():
            console.print(f"gain {model.gain:.3f} e-/ADU ({model.gain_source}); read noise "
                          f"{model.read_noise:.2f} e- ({model.read_noise_source})"
                          + (f" [{name}]" if name else ""), soft_wrap=True)
        made = len(result.rebuilt)
        borrowed = sum(m.library is not None for m in result.plan.masters)
        kept = len(result.masters) + len(result.reduced) - made - borrowed
        console.print(f"{result.out_dir}: {len(result.masters)} masters, {len(result.reduced)} "
                      f"reduced frames ({made} made, {kept} up to date and kept"
                      + (f", {borrowed} from the library" if borrowed else "")
                      + f"), manifest {result.manifest}", soft_wrap=True)
    for page in pages:
        console.print(f"report {page}")
    console.print(f"calibration library {library_path} ({executor.description})")


def _reduce_options(*, method: str, reject: str, overscan: str, instrument: Path | None,
                    gain: float | None, read_noise: float | None, saturation: float | None,
                    **rest: Any) -> Any:
    from .combine import METHODS, REJECTIONS
    from .pipeline import ReduceOptions
    from .steps import CombineOptions

    if method not in METHODS or reject not in REJECTIONS:
        raise ValueError(f"--method must be one of {sorted(METHODS)} and --reject one of "
                         f"{sorted(REJECTIONS)}")
    stack_options = CombineOptions(method=method, reject=reject)
    settings = {"gain": gain, "read_noise": read_noise, "saturation": saturation}
    sources = {}
    if instrument is not None:
        from .instruments import load_instrument

        for key, value in load_instrument(instrument).items():
            if settings[key] is None:
                settings[key] = value
                sources[key] = f"instrument file {instrument.name}"
    return ReduceOptions(bias_combine=stack_options, dark_combine=stack_options,
                         flat_combine=stack_options, sources=sources,
                         overscan=None if overscan == "none" else overscan, **settings, **rest)


@contextlib.contextmanager
def _progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<10}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err_console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks or bar.tasks[tasks[stage]].finished and done < total:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


library_app = typer.Typer(help="The calibration library: masters that can serve other nights.",
                          no_args_is_help=True)
app.add_typer(library_app, name="library")
LibraryOption = Annotated[Path, typer.Option(
    "--library", "-l", envvar="CCDRED_LIBRARY",
    help="The library file (e.g. OUT/calibrations.sqlite).")]


@library_app.command("list")
@_handle_errors
def library_list(
    library: LibraryOption,
    kind: Annotated[str | None, typer.Option(help="Only bias, dark or flat.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the masters in the library."""
    from .library import CalibrationLibrary, as_rows

    _existing_library(library)
    with CalibrationLibrary(library) as calibrations:
        entries = calibrations.entries(kind)
    if as_json:
        console.print_json(json.dumps(as_rows(entries)))
        return
    table = Table(title=f"{library} ({len(entries)} masters)")
    for column in ("id", "kind", "file", "camera", "filter/exp", "temp", "dates", "verdict"):
        table.add_column(column, overflow="fold")
    for e in entries:
        detail = e.filter or "" if e.kind == "flat" else (
            f"{e.exptime:g}s{' scalable' if e.scalable else ''}" if e.kind == "dark" else "")
        dates = " - ".join(dict.fromkeys(d[:16] for d in (e.date_start, e.date_end) if d))
        verdict = e.verdict + (f": {e.note}" if e.note else "")
        table.add_row(str(e.id), e.kind, e.path,
                      f"{e.instrument or '?'} {e.cols}x{e.rows} bin {e.xbin}x{e.ybin}", detail,
                      "" if e.temperature is None else f"{e.temperature:+.1f}", dates, verdict)
    console.print(table)


@library_app.command("add")
@_handle_errors
def library_add(
    library: LibraryOption,
    files: Annotated[list[Path], typer.Argument(help="Master FITS files.")],
    kind: Annotated[str | None, typer.Option(
        help="bias, dark or flat, for masters whose IMAGETYP does not say.")] = None,
) -> None:
    """Register master files (ccdred's, or another tool's with --kind)."""
    from .library import CalibrationLibrary

    with CalibrationLibrary(library) as calibrations:
        for path in files:
            entry = calibrations.add(path, kind=kind)
            console.print(f"#{entry.id} {entry.kind} {entry.path}")


@library_app.command("mark-bad")
@_handle_errors
def library_mark_bad(
    library: LibraryOption,
    ref: Annotated[str, typer.Argument(help="Entry id or master path.")],
    reason: Annotated[str, typer.Option(help="Why it must not be used.")],
) -> None:
    """Mark a master bad: it will never be chosen again."""
    from .library import CalibrationLibrary

    _existing_library(library)
    with CalibrationLibrary(library) as calibrations:
        entry = _library_entry(calibrations.mark_bad, ref, reason)
    console.print(f"#{entry.id} {entry.path}: marked bad ({reason})")


@library_app.command("remove")
@_handle_errors
def library_remove(
    library: LibraryOption,
    ref: Annotated[str, typer.Argument(help="Entry id or master path.")],
) -> None:
    """Forget a master (the file is left alone)."""
    from .library import CalibrationLibrary

    _existing_library(library)
    with CalibrationLibrary(library) as calibrations:
        entry = _library_entry(calibrations.remove, ref)
    console.print(f"#{entry.id} {entry.path}: removed from the library")


def _existing_library(path: Path) -> None:
    from .errors import BadInputError

    if not path.is_file():
        raise BadInputError(path, "no calibration library here (reduce a night first, or "
                                  "'ccdred library add')")


def _library_entry(action: Callable[..., Any], *args: Any) -> Any:
    try:
        return action(*args)
    except KeyError as err:
        raise ValueError(str(err).strip("'\"")) from None


@app.command(name="report")
@_handle_errors
def report_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder written by ccdred reduce.")],
    workers: Annotated[int, typer.Option(help="Processes for the figures.")] = 2,
) -> None:
    """(Re)build OUT_DIR/report/index.html: plan, masters, science frames, checks."""
    from .report import write_report

    console.print(f"report: {write_report(out_dir, workers=workers)}")


@app.command()
@_handle_errors
def show(
    files: Annotated[list[Path], typer.Argument(help="A FITS file (with --compare: RAW REDUCED).")],
    cutout: Annotated[str | None, typer.Option(
        help="Zoom X,Y,SIZE in pixels (default: the centre).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write a PNG.")] = None,
    hist: Annotated[bool, typer.Option("--hist", help="Pixel histogram instead.")] = False,
    compare: Annotated[bool, typer.Option(
        "--compare", help="2x2 before/after of RAW and REDUCED.")] = False,
    zscale: Annotated[bool, typer.Option(
        "--zscale", help="zscale colours (default: median -2/+5 sigma).")] = False,
) -> None:
    """Show a frame beside a zoomed cutout (or its histogram, or a before/after)."""
    from . import plots
    from .io import read

    expected = 2 if compare else 1
    if len(files) != expected:
        raise ValueError(f"show takes {expected} file(s){' (RAW REDUCED)' if compare else ''}, "
                         f"got {len(files)}")
    zoom = plots.Cutout.parse(cutout) if cutout else None
    scale = "zscale" if zscale else "sigma"
    frames = [read(path) for path in files]
    if compare:
        figure = plots.compare_figure(frames[0], frames[1], cutout=zoom, scale=scale)
    elif hist:
        figure = plots.histogram_figure(frames[0])
    else:
        figure = plots.frame_figure(frames[0], cutout=zoom, scale=scale)
    if output is not None:
        console.print(f"wrote {plots.save(figure, output)}")
        return
    _show_on_screen(figure)


def _show_on_screen(figure: Any) -> None:
    import os

    import matplotlib

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or sys.platform in ("darwin", "win32")):
        raise ValueError("no display to open a window on: give -o FILE.png")
    if matplotlib.get_backend().lower() == "agg":
        raise ValueError("matplotlib has no interactive backend here: give -o FILE.png")
    import matplotlib.pyplot as plt

    manager = plt.figure().canvas.manager  # a window, then our figure drawn in it
    manager.canvas.figure = figure
    figure.set_canvas(manager.canvas)
    plt.show()


@app.command()
@_handle_errors
def combine(
    files: Annotated[list[Path], typer.Argument(help="Frames to combine.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output FITS file.")],
    method: Annotated[str, typer.Option(help="median, mean or sum.")] = "median",
    reject: Annotated[str, typer.Option(
        help="none, sigclip, minmax, pclip, winsorized or ccdclip.")] = "none",
    sigma_low: Annotated[float, typer.Option(help="Lower clipping threshold (sigma).")] = 3.0,
    sigma_high: Annotated[float, typer.Option(help="Upper clipping threshold (sigma).")] = 3.0,
    maxiters: Annotated[int, typer.Option(help="Clipping passes (0: until stable).")] = 5,
    centre: Annotated[str, typer.Option(help="Clipping centre: median or mean.")] = "median",
    spread: Annotated[str, typer.Option(
        help="Clipping spread: pooled (pixel MAD, floored by the row's noise), mad or std.")
    ] = "pooled",
    nlow: Annotated[int, typer.Option(help="minmax: lowest values dropped.")] = 1,
    nhigh: Annotated[int, typer.Option(help="minmax: highest values dropped.")] = 1,
    nkeep: Annotated[int, typer.Option(help="Never keep fewer values than this.")] = 1,
    scale: Annotated[str | None, typer.Option(
        help="Multiplicative scaling: median, mean, mode or exptime.")] = None,
    zero: Annotated[str | None, typer.Option(help="Additive offsets: median, mean or mode.")
                    ] = None,
    gain: Annotated[float, typer.Option(help="ccdclip: gain (e-/ADU).")] = 1.0,
    read_noise: Annotated[float, typer.Option(help="ccdclip: read noise (e-).")] = 0.0,
    memory_limit: Annotated[str, typer.Option(help="Working memory, e.g. 500M, 2G.")] = "2G",
) -> None:
    """Combine frames into one file (image, UNCERT, MASK and DQ extensions)."""
    from . import io
    from .combine import combine as combine_frames
    from .steps import CombineOptions, master_header

    result = combine_frames(files, method=method, reject=reject, sigma_low=sigma_low,
                            sigma_high=sigma_high, maxiters=maxiters, centre=centre,
                            spread=spread, nlow=nlow, nhigh=nhigh, nkeep=nkeep, scale=scale,
                            zero=zero, gain=gain, read_noise=read_noise,
                            memory_limit=parse_size(memory_limit))
    opts = CombineOptions(method=method, reject=reject, sigma_low=sigma_low,
                          sigma_high=sigma_high, maxiters=maxiters, centre=centre, spread=spread,
                          nlow=nlow, nhigh=nhigh, nkeep=nkeep)
    header = master_header([io.read_header(p) for p in files], [p.name for p in files],
                           kind="combined", exptime=None, options=opts,
                           checksums=[io.sha256(p) for p in files])
    io.write(result.frame.replace(header=header), out)
    console.print(f"combined {len(files)} frames -> {out}")


def parse_size(text: str) -> int:
    """Parse a memory size such as ``512M``, ``2G`` or ``1500000`` (bytes)."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if cleaned and cleaned[-1] in units:
            return int(float(cleaned[:-1]) * units[cleaned[-1]])
        return int(float(cleaned))
    except ValueError as err:
        raise ValueError(f"memory size {text!r} is not a number of bytes like 500M or 2G"
                         ) from err


@app.command()
@_handle_errors
def simulate(
    out_dir: Annotated[Path, typer.Argument(help="Writes OUT_DIR/raw and OUT_DIR/truth.")],
    size: Annotated[int, typer.Option(help="Frame size in pixels (square).")] = 1024,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    noise_keywords: Annotated[bool, typer.Option(
        "--noise-keywords/--no-noise-keywords",
        help="Write GAIN and RDNOISE into the headers.")] = True,
) -> None:
    """Simulate a raw night with a synthetic camera, and write the truth beside it."""
    from .simulate import CameraModel, simulate_night

    night = simulate_night(out_dir, model=CameraModel(size=size, noise_keywords=noise_keywords),
                           seed=seed)
    counts = ", ".join(f"{len(v)} {k}" for k, v in night.files.items())
    console.print(f"simulated {counts} frames in {night.raw_dir}; truth in {night.truth_dir}")


def main() -> None:
    """Entry point of the ``ccdred`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
