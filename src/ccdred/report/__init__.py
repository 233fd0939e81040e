"""The night report: ``OUT_DIR/report/index.html`` with figures and quality verdicts.

Built from what a run wrote (``manifest.json``, masters, reduced frames and the raw frames they
came from), so ``ccdred report OUT_DIR`` can rebuild it at any time. Self-contained: PNG figures
beside the page, no network assets. Each science frame's figures and checks are one task on
the run's executor (this process, local processes or a Dask cluster); ``ccdred reduce`` draws
them in its workers as each frame is written (`draw_in_run`), while the frame is in memory,
and the report takes them as drawn. Masters are drawn in this process.
"""


import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import io
from ..pipeline.executors import Executor, InProcess, LocalProcesses
from ..pipeline.products import read_manifest
from .sections import (
    FIGURE_DPI,
    Section,
    build_sections,
    draw_in_run,
    finite,
    read_noise_adu,
    section_key,
)

__all__ = ["write_report", "draw_in_run", "night_figure"]


def write_report(out_dir: str | Path, *, executor: Executor | None = None,
                 workers: int | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Write ``out_dir/report/index.html`` for a reduced night and return its path.

    The page opens with the night at a glance (counts, verdicts, a figure of the night over
    time, the findings grouped by kind, worst first, and a sortable table of frames with
    thumbnails), then one section per master and per science frame. ``qa.json`` beside it
    holds every section's checks and numbers (valid JSON: unknown values are null).

    A section whose product, raw frame and masters are unchanged since it was drawn (by the
    reduction's workers, `draw_in_run`, or by an earlier report of a re-run that kept them)
    is taken from ``report/cache`` instead of being drawn again.

    Parameters
    ----------
    out_dir : path
        A folder written by `ccdred.reduce_night` (it holds ``manifest.json``).
    executor : Executor, optional
        Where each science frame's figures and checks are made
        (`ccdred.pipeline.executors`); masters' are made in this process.
    workers : int, optional
        Without an ``executor``: local worker processes to start for it (this process alone
        when omitted or 1).
    progress : callable, optional
        ``progress("report", done, total)``.

    Raises
    ------
    BadInputError
        ``out_dir`` holds no readable manifest.
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    report_dir = out / "report"
    figures_dir = report_dir / "figures"
    cache_dir = report_dir / "cache"
    figures_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(exist_ok=True)
    for part in report_dir.rglob(".*.part"):  # what a killed report left behind
        part.unlink(missing_ok=True)
    masters = {p.name: str(p.path) for p in manifest.masters()}
    checksums = {p.name: p.sha256 for p in manifest.masters()}
    tasks = [("master", p, str(figures_dir), read_noise_adu(manifest))
             for p in manifest.masters()]
    tasks += [("science", p, str(figures_dir), masters) for p in manifest.reduced()]
    keys = [section_key(task, checksums) for task in tasks]
    own = executor is None and workers is not None and workers > 1 and len(tasks) > 1
    runner = LocalProcesses(workers) if own else (executor or InProcess())
    try:
        ordered = build_sections(tasks, runner, progress or (lambda stage, done, total: None),
                                 keys, cache_dir)
    except BaseException as err:
        if own:
            runner.close(stop=isinstance(err, KeyboardInterrupt))
        raise
    if own:
        runner.close()
    _prune(report_dir, ordered, {task[1].path.stem for task in tasks})
    # matplotlib only here, in this process: the workers drawing sections never import it
    # for a science frame.
    from .. import plots
    from .night import night_figure
    from .page import page_html

    night = report_dir / "night.png"
    plots.save(night_figure(ordered), night, dpi=FIGURE_DPI)
    page = report_dir / "index.html"
    with io.atomic_output(page) as tmp:
        tmp.write_text(page_html(manifest, ordered), encoding="utf-8")
    with io.atomic_output(report_dir / "qa.json") as tmp:
        tmp.write_text(json.dumps([{"title": s.title, "anchor": s.anchor,
                                    "metrics": finite(s.metrics), "stats": finite(s.stats)}
                                   for s in ordered], indent=2, allow_nan=False) + "\n")
    return page




def _prune(report_dir: Path, sections: list[Section], stems: set[str]) -> None:
    """Remove figures and cache entries of products no longer in the manifest."""
    used = {report_dir / f for s in sections for f in [*s.figures, s.thumbnail] if f}
    for figure in (report_dir / "figures").glob("*.png"):
        if figure not in used:
            figure.unlink(missing_ok=True)
    for entry in (report_dir / "cache").glob("*.json"):
        if entry.stem not in stems:
            entry.unlink(missing_ok=True)


def __getattr__(name: str) -> Any:
    if name == "night_figure":  # imported on demand: it brings matplotlib
        from .night import night_figure

        return night_figure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
