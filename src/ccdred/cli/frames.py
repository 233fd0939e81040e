"""``ccdred info``, ``scan``, ``show``, ``combine`` and ``simulate``: frames one by one."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from astropy.io import fits

from .app import (
    EXIT_BAD_INPUT,
    app,
    combine_option_group,
    console,
    err_console,
    handle_errors,
    note_first_compile,
)

__all__ = ["info", "scan", "show", "combine", "simulate"]


def product_line(header: Any) -> str | None:
    """Say what a ccdred product is (master or reduced frame, from what), or None for others."""
    if "CCDRED" not in header:
        return None
    imagetyp = str(header.get("IMAGETYP", "")).strip()
    version = f"ccdred {header['CCDRED']}"
    if imagetyp.upper().startswith("MASTER"):
        details = [f"{header['NCOMBINE']} frames combined" if "NCOMBINE" in header else "",
                   f"filter {header['FILTER']}" if header.get("FILTER") else "",
                   f"{header['EXPTIME']:g} s" if isinstance(header.get("EXPTIME"), int | float)
                   and "DARK" in imagetyp.upper() else "",
                   version]
        return f"ccdred {imagetyp.lower()} ({', '.join(d for d in details if d)})"
    if "RAWFILE" in header:
        used = [f"{key.lower()} {header[key + 'FILE']}" for key in ("BIAS", "FLAT")
                if header.get(key + "FILE")]
        if header.get("DARKFILE"):
            used.insert(1 if header.get("BIASFILE") else 0, f"dark {header['DARKFILE']}")
        return (f"ccdred reduced frame of {header['RAWFILE']} ("
                f"{'; '.join(used) if used else 'no master applied'}; {version})")
    return f"ccdred product ({version})"


def _summary_line(path: Path) -> str:
    from ..inventory import describe_file
    from ..io import read_header

    product = product_line(read_header(path))
    if product is not None:
        return product

    info = describe_file(path)
    kind = (info.kind or "unknown").upper()
    shape = f"{info.shape[1]}x{info.shape[0]}" if info.shape else "?"
    where = info.telescope or info.instrument or "unknown telescope"
    exposure = f"{info.exptime}s exposure" if info.exptime is not None else "no exposure time"
    return f"{kind} ({shape}) taken with {where} on {info.date or 'unknown date'} ({exposure})"


@app.command()
@handle_errors
def info(files: Annotated[list[Path], typer.Argument(help="FITS or XISF files to describe.")],
         header: Annotated[bool, typer.Option("--header", help="Print the whole header.")] = False
         ) -> None:
    """Print one summary line per file (type, size, telescope, date, exposure)."""
    from ..errors import BadInputError
    from ..io import read_header

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
@handle_errors
def scan(raw_dir: Annotated[Path, typer.Argument(help="Folder searched recursively.")],
         as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False
         ) -> None:
    """List every FITS or XISF file: detected type, exposure, filter, binning, shape, date."""
    from ..inventory import scan as scan_dir

    infos = scan_dir(raw_dir)
    if as_json:
        sys.stdout.write(json.dumps([i.to_json() for i in infos], indent=2) + "\n")
        return
    table = Table(title=f"{len(infos)} FITS or XISF files in {raw_dir}")
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


@app.command()
@handle_errors
def show(
    files: Annotated[list[Path], typer.Argument(
        help="A FITS or XISF file (with --compare: RAW REDUCED).")],
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
    from .. import plots
    from ..io import read

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
@handle_errors
@combine_option_group
def combine(
    files: Annotated[list[Path], typer.Argument(help="Frames to combine.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output FITS file.")],
    combine_options: Any,
    scale: Annotated[str | None, typer.Option(
        help="Multiplicative scaling: median, mean, mode or exptime.")] = None,
    zero: Annotated[str | None, typer.Option(help="Additive offsets: median, mean or mode.")
                    ] = None,
    gain: Annotated[float, typer.Option(help="ccdclip: gain (e-/ADU).")] = 1.0,
    read_noise: Annotated[float, typer.Option(help="ccdclip: read noise (e-).")] = 0.0,
    allow_one: Annotated[bool, typer.Option(
        "--allow-one", help="Accept a single input frame (a copy with flags, not a stack).")
    ] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing output file (never one of the inputs).")
    ] = False,
) -> None:
    """Combine frames into one file (image, UNCERT, MASK and DQ extensions).

    Refused (exit status 2, nothing written): a single input without --allow-one, an output
    that is one of the inputs, an existing output without --force, inputs of different
    cameras or camera settings. Inputs of different frame
    types or exposure times are combined with a warning; the same data given twice is used
    once.
    """
    from .. import io
    from ..stacking import combine as combine_frames
    from ..steps import master_header

    options = combine_options.replace(scale=scale, zero=zero, gain=gain, read_noise=read_noise)
    checked = _combine_inputs(files, out, allow_one=allow_one, force=force,
                              scaled=scale is not None)
    files, headers = list(checked), list(checked.values())
    units = {str(h.get("BUNIT", "adu")).strip().lower() for h in headers}
    if len(units) > 1:
        raise ValueError(f"the frames are in different units (BUNIT {', '.join(sorted(units))}): "
                         "combine frames of one unit")
    note_first_compile()
    result = combine_frames(files, options)
    with ThreadPoolExecutor(4) as pool:  # hashlib releases the GIL; files read are remembered
        checksums = list(pool.map(io.sha256, files))
    header = master_header(headers, [p.name for p in files],
                           kind="combined", exptime=None, options=options,
                           checksums=checksums)
    header["BUNIT"] = (units.pop(), "data units (uncertainty too), as the inputs'")
    from .._version import __version__

    header["CCDRED"] = (__version__, "ccdred version")  # a product, never a raw frame again
    io.write(result.frame.replace(header=header), out)
    console.print(f"combined {len(files)} frames -> {escape(str(out))}")


def _combine_inputs(files: list[Path], out: Path, *, allow_one: bool, force: bool,
                    scaled: bool) -> dict[Path, fits.Header]:
    """Check ``combine``'s inputs and output before any work; return the inputs to use.

    Each input's header is read once: the result maps the inputs to use to their headers.
    """
    from ..errors import BadInputError
    from ..inventory import describe_header, find_duplicates
    from ..io import read_header
    from ..pipeline.plan import same_exptime

    for path in files:
        if out.exists() and path.exists() and out.resolve() == path.resolve():
            raise BadInputError(out, "is one of the inputs: an input is never overwritten "
                                     "(give another -o)")
    if out.is_dir():
        raise BadInputError(out, "is a directory: -o names the output file")
    if out.exists() and not force:
        raise BadInputError(out, "exists already: give --force to overwrite it")
    headers = {path: read_header(path) for path in files}  # an unreadable one raises
    infos = [describe_header(p, headers[p]) for p in files]
    named_twice = sorted({p for p in files if files.count(p) > 1})
    for path in named_twice:
        _warn(f"{path} is given {files.count(path)} times: used once")
    files = list(dict.fromkeys(files))
    dropped = {d.path: d for d in find_duplicates(files)}
    for dup in dropped.values():
        _warn(f"{dup.path} holds the same data as {dup.same_as} ({dup.how}): used once")
    files = [p for p in files if p not in dropped]
    if len(files) < 2 and not allow_one:
        raise BadInputError(files[0], "a single input frame: nothing to combine (give "
                                      "--allow-one to write it with flags anyway)")
    used = [i for i in infos if i.path not in dropped]
    _one_camera(used)
    kinds = sorted({i.kind or "unknown" for i in used})
    if len(kinds) > 1:
        _warn(f"the inputs are of different frame types ({', '.join(kinds)}): combined "
              f"anyway")
    times = sorted({i.exptime for i in used if i.exptime is not None})
    if times and not scaled and not same_exptime(times[0], times[-1]):
        _warn(f"the inputs have different exposure times ({', '.join(f'{t:g}s' for t in times)}"
              f") and no --scale: combined as they are")
    return {path: headers[path] for path in files}


def _one_camera(infos: list[Any]) -> None:
    """Refuse inputs of different cameras or camera settings (never combined together)."""
    from ..errors import BadInputError

    named = {i.setup.instrument for i in infos if i.setup.instrument}
    setups = {i.setup._replace(instrument=None) if len(named) <= 1 else i.setup
              for i in infos}
    if len(setups) > 1:
        described = "; ".join(sorted(s.describe() for s in setups))
        raise BadInputError(infos[0].path, f"the inputs come from different cameras or camera "
                                            f"settings ({described}): frames of different "
                                            f"setups are never combined")


def _warn(text: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)


@app.command()
@handle_errors
def simulate(
    out_dir: Annotated[Path, typer.Argument(help="Writes OUT_DIR/raw and OUT_DIR/truth.")],
    size: Annotated[int, typer.Option(help="Frame size in pixels (square).")] = 1024,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    noise_keywords: Annotated[bool, typer.Option(
        "--noise-keywords/--no-noise-keywords",
        help="Write GAIN and RDNOISE into the headers.")] = True,
    camera: Annotated[str, typer.Option(
        help="ccd (a CCD night with bias frames), cmos-mono or cmos-colour (a CMOS camera's "
             "night as a capture program writes it).")] = "ccd",
    program: Annotated[str | None, typer.Option(
        help="CMOS cameras: the capture program whose headers, folders and names the files "
             "follow: nina (default), sharpcap, asiair, ekos or apt.")] = None,
) -> None:
    """Simulate a raw night with a synthetic camera, and write the truth beside it."""
    cameras = ("ccd", "cmos-mono", "cmos-colour")
    if camera not in cameras:
        raise ValueError(f"--camera must be one of {', '.join(cameras)}, got {camera!r}")
    if camera != "ccd":
        from ..simulate_cmos import PROGRAMS, CmosModel, simulate_cmos_night

        program = program or "nina"
        if program not in PROGRAMS:
            raise ValueError(f"--program must be one of {', '.join(PROGRAMS)}, got {program!r}")
        model = CmosModel(size=size, colour=camera == "cmos-colour", program=program)
        cmos = simulate_cmos_night(out_dir, model=model, seed=seed)
        counts = ", ".join(f"{len(v)} {k}" for k, v in cmos.files.items() if v)
        console.print(f"simulated {counts} frames ({camera}, {model.camera_name}, "
                      f"{PROGRAMS[program].name} files) in {cmos.raw_dir}; truth in "
                      f"{cmos.truth_dir}")
        return
    if program is not None:
        raise ValueError("--program applies to the CMOS cameras: give --camera cmos-mono or "
                         "cmos-colour")
    from ..simulate import CameraModel, simulate_night

    night = simulate_night(out_dir, model=CameraModel(size=size, noise_keywords=noise_keywords),
                           seed=seed)
    counts = ", ".join(f"{len(v)} {k}" for k, v in night.files.items())
    console.print(f"simulated {counts} frames in {night.raw_dir}; truth in {night.truth_dir}")


