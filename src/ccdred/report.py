"""The night report: ``OUT_DIR/report/index.html`` with figures and quality verdicts.

Built from what a run wrote (``manifest.json``, masters, reduced frames and the raw frames they
came from), so ``ccdred report OUT_DIR`` can rebuild it at any time. Self-contained: PNG figures
beside the page, no network assets. Each product's figures and checks are one task on the
run's executor (this process, local processes or a Dask cluster).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import io, plots, qa
from .errors import BadInputError
from .frame import Frame
from .pipeline.executors import Executor, InProcess, LocalProcesses
from .pipeline.products import Manifest, Product, read_manifest
from .pipeline.recipes import recipe_for

__all__ = ["write_report"]

_THUMBNAIL_DPI = 60


@dataclass
class _Section:
    """One product's part of the report."""

    title: str
    kind: str
    figures: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _master_section(product: Product, figures_dir: str, read_noise_adu: float | None
                    ) -> _Section:
    path = product.path
    frame = io.read(path)
    recipe = recipe_for(product.kind)
    section = _Section(f"master {product.kind}: {path.name}", "master")
    name = path.stem
    plots.save(plots.frame_figure(frame, title=path.name), Path(figures_dir) / f"{name}.png",
               dpi=_THUMBNAIL_DPI)
    section.figures.append(f"figures/{name}.png")
    n_inputs = len(product.inputs) or int(frame.header.get("NCOMBINE", 1))
    borrowed = product.parameters.get("library")
    if borrowed:
        section.notes.append(f"from the calibration library ({borrowed['reason']}); "
                             f"{n_inputs} frames combined: {frame.header.get('COMBINE', '')}")
    else:
        section.notes.append(f"{n_inputs} frames combined: {product.parameters['combine']}")
    metrics = []
    # Only a bias is noise alone: a dark's and a flat's pixel-to-pixel structure is real.
    if "noise" in recipe.report and read_noise_adu:
        metrics.append(qa.master_noise(frame, read_noise_adu / np.sqrt(n_inputs)))
    if "defects" in recipe.report and recipe.defect_flag is not None:
        plots.save(plots.histogram_figure(frame, title=path.name),
                   Path(figures_dir) / f"{name}_hist.png", dpi=_THUMBNAIL_DPI)
        section.figures.append(f"figures/{name}_hist.png")
        metrics.append(qa.defect_count(frame, recipe.defect_flag))
    if "donuts" in recipe.report:
        metrics.append(qa.donut_metric(frame)[0])
    section.metrics = [m.to_json() for m in metrics]
    return section


def _science_section(product: Product, figures_dir: str, masters: Mapping[str, str]
                     ) -> _Section:
    path = product.path
    reduced = io.read(path)
    section = _Section(f"science: {path.name}", "science")
    raw_path = product.inputs[0].path
    raw: Frame | None = None
    try:
        raw = io.read(raw_path)
    except BadInputError as err:
        section.notes.append(f"raw frame not available for comparison: {err}")
    params = product.parameters
    dark = flat = None
    dark_scale = 1.0
    if params.get("dark"):
        dark = io.read(masters[params["dark"]["master"]])
        dark_scale = float(params["dark"]["scale"])
    if params.get("flat"):
        flat = io.read(masters[params["flat"]])
    if raw is not None and raw.shape == reduced.shape:
        figure = plots.compare_figure(raw, reduced, titles=(f"raw: {raw_path.name}",
                                                            f"reduced: {path.name}"))
    else:
        figure = plots.frame_figure(reduced, title=path.name)
    plots.save(figure, Path(figures_dir) / f"{path.stem}.png", dpi=_THUMBNAIL_DPI)
    section.figures.append(f"figures/{path.stem}.png")
    metrics = qa.science_checks(reduced, raw if raw is not None and raw.shape == reduced.shape
                                else None, dark=dark, dark_scale=dark_scale, flat=flat)
    section.metrics = [m.to_json() for m in metrics]
    section.notes.append(
        f"bias: {params.get('bias') or 'none'}; dark: "
        f"{params['dark']['master'] + ' x ' + format(dark_scale, '.4g') if dark else 'none'}; "
        f"flat: {params.get('flat') or 'none'}")
    return section


def _build_section(task: tuple[str, Product, str, Any]) -> _Section:
    kind, product, figures_dir, extra = task
    if kind == "master":
        return _master_section(product, figures_dir, extra)
    return _science_section(product, figures_dir, extra)


def _sections(tasks: list[tuple[str, Product, str, Any]], executor: Executor,
              report: Callable[[str, int, int], None]) -> list[_Section]:
    sections: dict[int, _Section] = {}
    report("report", 0, len(tasks))
    for index, section in executor.map_unordered(_build_section, tasks):
        sections[index] = section
        report("report", len(sections), len(tasks))
    return [sections[i] for i in range(len(tasks))]


def _read_noise_adu(manifest: Manifest) -> float | None:
    noise = next(iter(manifest.noise.values()), None)
    if not noise or not noise.get("gain"):
        return None
    return float(noise["read_noise"]) / float(noise["gain"]) or None


def write_report(out_dir: str | Path, *, executor: Executor | None = None,
                 workers: int | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Write ``out_dir/report/index.html`` for a reduced night and return its path.

    Parameters
    ----------
    out_dir : path
        A folder written by `ccdred.reduce_night` (it holds ``manifest.json``).
    executor : Executor, optional
        Where each product's figures and checks are made (`ccdred.pipeline.executors`).
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
    figures_dir.mkdir(parents=True, exist_ok=True)
    for part in report_dir.rglob(".*.part"):  # what a killed report left behind
        part.unlink(missing_ok=True)
    masters = {p.name: str(p.path) for p in manifest.masters()}
    tasks = [("master", p, str(figures_dir), _read_noise_adu(manifest))
             for p in manifest.masters()]
    tasks += [("science", p, str(figures_dir), masters) for p in manifest.reduced()]
    own = executor is None and workers is not None and workers > 1 and len(tasks) > 1
    runner = LocalProcesses(workers) if own else (executor or InProcess())
    try:
        ordered = _sections(tasks, runner, progress or (lambda stage, done, total: None))
    except BaseException as err:
        if own:
            runner.close(stop=isinstance(err, KeyboardInterrupt))
        raise
    if own:
        runner.close()
    page = report_dir / "index.html"
    with io.atomic_output(page) as tmp:
        tmp.write_text(_html(manifest, ordered), encoding="utf-8")
    with io.atomic_output(report_dir / "qa.json") as tmp:
        tmp.write_text(json.dumps([{"title": s.title, "metrics": s.metrics}
                                   for s in ordered], indent=2, default=float) + "\n")
    return page


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
.pass { background: #e3f4e3; } .warn { background: #fff3cd; } .fail { background: #f8d7da; }
.info { background: #e7eef8; } img { max-width: 100%; border: 1px solid #eee; }
.warnings li { margin: 0.2em 0; } .muted { color: #666; font-size: 0.9em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _value(value: Any) -> str:
    if isinstance(value, float) and not np.isfinite(value):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else _e(value)


def _html(manifest: Manifest, sections: list[_Section]) -> str:
    plan = manifest.plan
    problems = [f"{_e(s.title)}: <b>{m['verdict']}</b> {_e(m['name'])} - {_e(m['detail'])}"
                for s in sections for m in s.metrics if m["verdict"] in ("warn", "fail")]
    warnings = ([f"unusable file skipped: {_e(i['path'])}: {_e(i['reason'])}"
                 for i in plan.get("skipped", [])]
                + [_e(w) for w in plan.get("warnings", [])]
                + [_e(w) for w in manifest.warnings] + problems)
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>ccdred night report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>ccdred night report</h1>",
             f"<p class='muted'>raw: {_e(plan['raw_dir'])} &middot; ccdred "
             f"{_e(manifest.ccdred_version)} &middot; {_e(manifest.created)}"
             f"</p>", "<h2 id='warnings'>Warnings</h2>"]
    if warnings:
        parts.append("<ul class='warnings'>" + "".join(f"<li>{w}</li>" for w in warnings)
                     + "</ul>")
    else:
        parts.append("<p class='pass'>No warnings: no check warned or failed.</p>")
    parts.append(_plan_html(manifest))
    for kind, heading in (("master", "Masters"), ("science", "Science frames")):
        parts.append(f"<h2>{heading}</h2>")
        for section in (s for s in sections if s.kind == kind):
            parts.append(_section_html(section))
    parts.append("</body></html>")
    return "\n".join(parts)


def _plan_html(manifest: Manifest) -> str:
    plan = manifest.plan
    noise = "".join(f"<li>{_e(k)}: gain {_value(float(v['gain']))} e-/ADU "
                    f"({_e(v['gain_source'])}); read noise {_value(float(v['read_noise']))} e- "
                    f"({_e(v['read_noise_source'])})</li>"
                    for k, v in manifest.noise.items())
    rows = "".join(f"<tr><td>{_e(m['file'])}</td><td>{_master_origin(m)}</td>"
                   f"<td>{_e(m.get('bias') or '')}</td></tr>" for m in plan["masters"])
    science = "".join(
        f"<tr><td>{_e(Path(s['input']).name)}</td><td>{_e(s.get('bias') or 'none')}</td>"
        f"<td>{_dark_text(s['dark'])}</td><td>{_e(s.get('flat') or 'none')}</td></tr>"
        for s in plan["science"])
    return (f"<h2>Plan</h2><ul>{noise}</ul>"
            f"<table><tr><th>master</th><th>from</th><th>bias</th></tr>{rows}</table>"
            f"<table><tr><th>science frame</th><th>bias</th><th>dark</th><th>flat</th></tr>"
            f"{science}</table>")


def _master_origin(master: dict[str, Any]) -> str:
    if master.get("library"):
        return _e(f"calibration library: {master['library']}")
    return _e(f"{len(master['inputs'])} {master['kind']} frames")


def _dark_text(dark: dict[str, Any] | None) -> str:
    return _e(f"{dark['master']} x {dark['scale']:.4g}") if dark else "none"


def _section_html(section: _Section) -> str:
    rows = "".join(
        f"<tr class='{_e(m['verdict'])}'><td>{_e(m['question'])}</td><td>{_e(m['name'])}</td>"
        f"<td>{_value(m['value'])}</td><td><b>{_e(m['verdict'])}</b></td>"
        f"<td>{_e(m['threshold'])}</td><td>{_e(m['detail'])}</td></tr>" for m in section.metrics)
    notes = "".join(f"<p class='muted'>{_e(n)}</p>" for n in section.notes)
    images = "".join(f"<p><img src='{_e(f)}' alt='{_e(f)}'></p>"
                     for f in section.figures)
    table = ("<table><tr><th>question</th><th>check</th><th>value</th><th>verdict</th>"
             f"<th>threshold</th><th>detail</th></tr>{rows}</table>") if rows else ""
    return f"<h3>{_e(section.title)}</h3>{notes}{table}{images}"
