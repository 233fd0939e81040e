"""``ccdred library``: list, add, mark bad and remove masters of the calibration library."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .app import Typer, app, console, handle_errors

__all__ = ["library_app"]


library_app = Typer(help="The calibration library: masters that can serve other nights.",
                          no_args_is_help=True)
app.add_typer(library_app, name="library")
LibraryOption = Annotated[Path, typer.Option(
    "--library", "-l", envvar="CCDRED_LIBRARY",
    help="The library file (e.g. OUT/calibrations.sqlite).")]


@library_app.command("list")
@handle_errors
def library_list(
    library: LibraryOption,
    kind: Annotated[str | None, typer.Option(help="Only masters of this kind (bias, dark...).")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the masters in the library."""
    from ..library import CalibrationLibrary, as_rows

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
        detail = _detail(e)
        dates = " - ".join(dict.fromkeys(d[:16] for d in (e.date_start, e.date_end) if d))
        verdict = e.verdict + (f": {e.note}" if e.note else "")
        table.add_row(str(e.id), e.kind, e.path,
                      f"{e.instrument or '?'} {e.cols}x{e.rows} bin {e.xbin}x{e.ybin}", detail,
                      "" if e.temperature is None else f"{e.temperature:+.1f}", dates, verdict)
    console.print(table)


@library_app.command("add")
@handle_errors
def library_add(
    library: LibraryOption,
    files: Annotated[list[Path], typer.Argument(help="Master FITS files.")],
    kind: Annotated[str | None, typer.Option(
        help="The kind of master (bias, dark, flat...), for masters whose IMAGETYP does not "
             "say.")] = None,
) -> None:
    """Register master files (ccdred's, or another tool's with --kind)."""
    from ..library import CalibrationLibrary
    from ..pipeline.recipes import recipe_for

    if kind is not None:
        recipe_for(kind)
    with CalibrationLibrary(library) as calibrations:
        for path in files:
            entry = calibrations.add(path, kind=kind)
            console.print(f"#{entry.id} {entry.kind} {entry.path}")


@library_app.command("mark-bad")
@handle_errors
def library_mark_bad(
    library: LibraryOption,
    ref: Annotated[str, typer.Argument(help="Entry id or master path.")],
    reason: Annotated[str, typer.Option(help="Why it must not be used.")],
) -> None:
    """Mark a master bad: it will never be chosen again."""
    from ..library import CalibrationLibrary

    _existing_library(library)
    with CalibrationLibrary(library) as calibrations:
        entry = _library_entry(calibrations.mark_bad, ref, reason)
    console.print(f"#{entry.id} {entry.path}: marked bad ({reason})")


@library_app.command("remove")
@handle_errors
def library_remove(
    library: LibraryOption,
    ref: Annotated[str, typer.Argument(help="Entry id or master path.")],
) -> None:
    """Forget a master (the file is left alone)."""
    from ..library import CalibrationLibrary

    _existing_library(library)
    with CalibrationLibrary(library) as calibrations:
        entry = _library_entry(calibrations.remove, ref)
    console.print(f"#{entry.id} {entry.path}: removed from the library")


def _detail(entry: Any) -> str:
    """Return a master's filter and exposure, as far as they say something."""
    parts = [entry.filter] if entry.filter else []
    if entry.exptime:
        parts.append(f"{entry.exptime:g}s{' scalable' if entry.scalable else ''}")
    return " ".join(parts)


def _existing_library(path: Path) -> None:
    from ..errors import BadInputError

    if not path.is_file():
        raise BadInputError(path, "no calibration library here (reduce a night first, or "
                                  "'ccdred library add')")


def _library_entry(action: Callable[..., Any], *args: Any) -> Any:
    try:
        return action(*args)
    except KeyError as err:
        raise ValueError(str(err).strip("'\"")) from None


