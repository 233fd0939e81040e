"""One section of the night report per product: its figures, checks and numbers, cached.

A science frame's section is drawn by the reduction's worker as the frame is written
(`draw_in_run`), or as one task on the report's executor; a master's in the report's own
process. A section whose product, raw frame and masters are unchanged since it was drawn is
read back from ``report/cache`` instead of drawn again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import io, qa
from ..errors import BadInputError
from ..flags import Flag
from ..frame import Frame
from ..instruments import load_conventions
from ..instruments.headers import as_text, header_value
from ..pipeline.executors import Executor
from ..pipeline.products import Manifest, Product
from ..pipeline.recipes import recipe_for
from ..quicklook import write_quicklook, write_thumbnail

__all__ = ["Section", "build_sections", "draw_in_run", "section_key", "read_noise_adu", "finite",
           "SEVERITY", "FIGURE_DPI"]

FIGURE_DPI = 80
"""Figures in a section: 11 inches wide, 880 pixels: readable on the page, full size on a click."""
_THUMB_PIXELS = 160
"""Longest side of a frame's thumbnail in the summary table."""
_CACHE_VERSION = "report-9"
"""Bump when a section's content changes: cached sections of older reports are redrawn."""


@dataclass
class Section:
    """One product's part of the report, and the numbers the night's summary is drawn from."""

    title: str
    kind: str
    anchor: str = ""
    figures: list[str] = field(default_factory=list)
    thumbnail: str = ""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    """Per frame: ``time`` (DATE-OBS), ``exptime``, ``filter``, ``sky``, ``noise``,
    ``noise_model``, ``cosmics``, ``saturated``, ``flatness`` (science); ``time``, ``name``
    (masters)."""

    def to_json(self) -> dict[str, Any]:
        """Return the section as JSON-ready data (NaN and infinities become null)."""
        return finite({"title": self.title, "kind": self.kind, "anchor": self.anchor,
                        "figures": self.figures, "thumbnail": self.thumbnail,
                        "metrics": self.metrics, "notes": self.notes, "stats": self.stats})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Section:
        """Read a section back (from the report's cache)."""
        return cls(**{k: data[k] for k in ("title", "kind", "anchor", "figures", "thumbnail",
                                           "metrics", "notes", "stats")})


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (valid JSON)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _anchor(name: str) -> str:
    return "s-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _time(header: Any) -> str | None:
    value = header.get("DATE-OBS")
    return str(value) if value else None


def _master_section(product: Product, figures_dir: str, read_noise_adu: float | None
                    ) -> Section:
    path = product.path
    frame = io.read(path)
    recipe = recipe_for(product.kind)
    name = path.stem
    section = Section(f"master {product.kind}: {path.name}", "master", anchor=_anchor(name))
    write_quicklook([(frame, path.name)], Path(figures_dir) / f"{name}.png")
    section.figures.append(f"figures/{name}.png")
    section.stats = {"time": _time(frame.header), "name": product.name, "kind": product.kind}
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
        from .. import plots  # matplotlib: only for a master's histogram

        plots.save(plots.histogram_figure(frame, title=path.name),
                   Path(figures_dir) / f"{name}_hist.png", dpi=FIGURE_DPI)
        section.figures.append(f"figures/{name}_hist.png")
        metrics.append(qa.defect_count(frame, recipe.defect_flag))
    if "donuts" in recipe.report:
        metrics.append(qa.donut_metric(frame)[0])
    section.metrics = [m.to_json() for m in metrics]
    return section


def _science_section(product: Product, figures_dir: str, masters: Mapping[str, str]
                     ) -> Section:
    """Draw a science frame's section from the files: the product, its raw frame, its masters."""
    reduced = io.read(product.path)
    notes = []
    raw: Frame | None = None
    try:
        raw = io.read(product.inputs[0].path)
    except BadInputError as err:
        notes.append(f"raw frame not available for comparison: {err}")
    params = product.parameters
    dark_path = masters[params["dark"]["master"]] if params.get("dark") else None
    flat_path = masters[params["flat"]] if params.get("flat") else None
    dark = _master(dark_path) if dark_path else None
    flat = _master(flat_path) if flat_path else None
    maps = _maps((dark_path, dark), (flat_path, flat))
    return _draw_science(product, reduced, raw, dark, flat, maps, figures_dir, notes)


def draw_in_run(out_dir: Path, product: Product, raw: Frame, reduced: Frame,
                masters: Mapping[str, tuple[Any, Frame]]) -> None:
    """Draw a science frame's section in the reduction's worker, as it is written.

    A `ccdred.pipeline.science.ReducedHook`: the frames are in memory, so nothing is read
    again. The section and its figures go to ``out_dir/report`` with the cache key the report
    computes, so `write_report` takes it as drawn. Identical to the section drawn from the
    files (`as_read_back`); a product written compressed (quantised) is left to the report.
    A failure here is left to the report too: it draws the section again from the files, and
    says what went wrong there.
    """
    if product.parameters.get("layout", "ccddata") != "ccddata":
        return
    try:
        report_dir = Path(out_dir) / "report"
        figures_dir = report_dir / "figures"
        cache_dir = report_dir / "cache"
        figures_dir.mkdir(parents=True, exist_ok=True)
        cache_dir.mkdir(exist_ok=True)
        params = product.parameters
        paths = {name: ref.path for name, (ref, _) in masters.items()}
        frames = {name: frame for name, (_, frame) in masters.items()}
        dark_name = params["dark"]["master"] if params.get("dark") else None
        flat_name = params.get("flat")
        dark, flat = frames.get(dark_name), frames.get(flat_name)
        maps = _maps((paths.get(dark_name), dark), (paths.get(flat_name), flat))
        section = _draw_science(product, io.as_read_back(reduced), raw, dark, flat, maps,
                                str(figures_dir), [])
        task = ("science", product, str(figures_dir), paths)
        key = section_key(task, {name: ref.sha256 for name, (ref, _) in masters.items()})
        _store(cache_dir, product, key, section)
    except Exception:  # noqa: BLE001 - the report redraws it from the files, and says why
        return


def _draw_science(product: Product, reduced: Frame, raw: Frame | None, dark: Frame | None,
                  flat: Frame | None, maps: qa.MasterMaps, figures_dir: str, notes: list[str]
                  ) -> Section:
    """Draw a science frame's figures and run its checks (the frames already read)."""
    path = product.path
    section = Section(f"science: {path.name}", "science", anchor=_anchor(path.stem))
    section.notes.extend(notes)
    raw_path = product.inputs[0].path
    params = product.parameters
    dark_scale = float(params["dark"]["scale"]) if dark is not None else 1.0
    comparable = raw if raw is not None and raw.shape == reduced.shape else None
    shown = [(reduced, f"reduced: {path.name}")]
    if comparable is not None:
        shown.insert(0, (comparable, f"raw: {raw_path.name}"))
    write_quicklook(shown, Path(figures_dir) / f"{path.stem}.png")
    section.figures.append(f"figures/{path.stem}.png")
    write_thumbnail(reduced, Path(figures_dir) / f"{path.stem}_thumb.png", _THUMB_PIXELS)
    section.thumbnail = f"figures/{path.stem}_thumb.png"
    noise, sky = qa.local_noise(reduced), qa.sky_level(reduced)
    metrics = qa.science_checks(reduced, dark=dark, dark_scale=dark_scale, flat=flat,
                                noise=noise, sky=sky, maps=maps)
    section.metrics = [m.to_json() for m in metrics]
    section.stats = _science_stats(reduced, params, metrics, noise, sky)
    section.notes.append(f"units: {reduced.header.get('BUNIT', 'adu')}" + (
        f" (ADU x GAIN={float(reduced.header['GAIN']):.4g} e-/ADU)"
        if _in_electrons(reduced) and "GAIN" in reduced.header else ""))
    section.notes.append(
        f"bias: {params.get('bias') or 'none'}; dark: "
        f"{params['dark']['master'] + ' x ' + format(dark_scale, '.4g') if dark else 'none'}; "
        f"flat: {params.get('flat') or 'none'}")
    return section


def _stamp(path: str) -> tuple[str, int, int, int]:
    stat = os.stat(path)
    return (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_master(stamp: tuple[str, int, int, int]) -> Frame:
    return io.read(stamp[0])


def _master(path: str) -> Frame:
    """Return a master, read once per worker process while the file is unchanged.

    Every science section of a night uses the same few (a dark and a flat per filter); four
    are kept, as the reduction's workers keep theirs (`ccdred.pipeline.tasks`).
    """
    return _read_master(_stamp(path))


_MAPS: dict[tuple[Any, Any], qa.MasterMaps] = {}
_MAPS_LOCK = threading.Lock()


def _maps(dark: tuple[str | None, Frame | None], flat: tuple[str | None, Frame | None]
          ) -> qa.MasterMaps:
    """Return what the checks take from a dark and a flat, found once per worker process.

    Each master as its path and frame (None, None when not used); four pairs are kept, while
    their files are unchanged.
    """
    key = tuple(_stamp(path) if path and frame is not None else None
                for path, frame in (dark, flat))
    with _MAPS_LOCK:  # a Dask worker may run several sections at once, in threads
        maps = _MAPS.pop(key, None)
        if maps is None:
            maps = qa.master_maps(dark=dark[1], flat=flat[1])
        _MAPS[key] = maps  # the most recently used last
        while len(_MAPS) > 4:
            _MAPS.pop(next(iter(_MAPS)))
    return maps


def _in_electrons(frame: Frame) -> bool:
    return str(frame.header.get("BUNIT", "adu")).strip().lower() == "electron"


def _science_stats(reduced: Frame, params: Mapping[str, Any], metrics: list[qa.Metric],
                   noise: float, sky: float) -> dict[str, Any]:
    """Return the numbers of one frame on the night's figure and table."""
    gain, read_noise = params.get("gain"), params.get("read_noise")
    model = np.nan
    if gain and read_noise is not None and np.isfinite(sky):
        # Photon noise of the sky plus read noise, in the frame's unit (the flat is ~1 on the
        # sky): electrons, or ADU.
        g = 1.0 if _in_electrons(reduced) else float(gain)
        model = float(np.sqrt(max(sky, 0.0) / g + (float(read_noise) / g) ** 2))
    flatness = next((m for m in metrics if m.name == "flatness"), None)
    return {"time": _time(reduced.header), "exptime": reduced.header.get("EXPTIME"),
            "filter": as_text(header_value(reduced.header,
                                           load_conventions().keywords["filter"])),
            "sky": sky, "noise": noise,
            "noise_model": model, "cosmics": int(reduced.has(Flag.COSMIC_RAY).sum()),
            "saturated": int(reduced.has(Flag.SATURATED).sum()),
            "flatness": flatness.value if flatness is not None else np.nan,
            "verdict": _worst([m.verdict for m in metrics if m.verdict != "info"])}


SEVERITY = {"fail": 3, "warn": 2, "info": 1, "pass": 0}


def _worst(verdicts: list[str]) -> str:
    return max(verdicts, key=lambda v: SEVERITY.get(v, 0), default="pass")


def _build_section(task: tuple[str, Product, str, Any]) -> Section:
    kind, product, figures_dir, extra = task
    if kind == "master":
        return _master_section(product, figures_dir, extra)
    return _science_section(product, figures_dir, extra)


def section_key(task: tuple[str, Product, str, Any], checksums: Mapping[str, str]) -> str:
    """Hash of what a section is drawn from: the product, its raw input and masters used."""
    kind, product, _, extra = task
    used = {}
    if kind == "science":
        params = product.parameters
        names = [params.get("bias"), params.get("flat"),
                 (params.get("dark") or {}).get("master")]
        used = {n: checksums.get(n, "") for n in names if n}
    text = json.dumps({"v": _CACHE_VERSION, "kind": kind, "product": product.sha256,
                       "inputs": [i.sha256 for i in product.inputs[:1]], "masters": used,
                       "extra": extra if kind == "master" else None}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _cached(task: tuple[str, Product, str, Any], key: str, cache_dir: Path) -> Section | None:
    """Return the section drawn for the same product last time (its figures still there)."""
    path = cache_dir / f"{task[1].path.stem}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        section = Section.from_json(data["section"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    report_dir = cache_dir.parent
    files = [*section.figures, section.thumbnail]
    return section if all((report_dir / f).is_file() for f in files if f) else None


def _store(cache_dir: Path, product: Product, key: str, section: Section) -> None:
    """Keep a section drawn, under the key of what it was drawn from."""
    with io.atomic_output(cache_dir / f"{product.path.stem}.json") as tmp:
        tmp.write_text(json.dumps({"key": key, "section": section.to_json()},
                                  allow_nan=False), encoding="utf-8")


def build_sections(tasks: list[tuple[str, Product, str, Any]], executor: Executor,
              report: Callable[[str, int, int], None], keys: list[str], cache_dir: Path
              ) -> list[Section]:
    """Return every task's section, in task order: from the cache, or drawn.

    Science sections are drawn on ``executor``; masters' in a thread of this process
    meanwhile: their histograms need matplotlib, which this process loads anyway for the
    night's figure (a worker loading it too costs about a second of CPU).
    ``report("report", done, total)`` is called as sections arrive (cached ones at once,
    masters' after the science frames').
    """
    sections: dict[int, Section] = {}
    for index, task in enumerate(tasks):
        cached = _cached(task, keys[index], cache_dir)
        if cached is not None:
            sections[index] = cached
    todo = [i for i in range(len(tasks)) if i not in sections]
    report("report", len(sections), len(tasks))
    here = [i for i in todo if tasks[i][0] == "master"]
    there = [i for i in todo if tasks[i][0] != "master"]

    def keep(index: int, section: Section) -> None:
        sections[index] = section
        _store(cache_dir, tasks[index][1], keys[index], section)
        report("report", len(sections), len(tasks))

    # The masters in a thread of this process, while the executor draws the science frames
    # (the report's kernels are serial: numba's workqueue layer aborts on parallel kernels
    # launched from two threads at once).
    with ThreadPoolExecutor(1, thread_name_prefix="ccdred-masters") as pool:
        masters = pool.submit(lambda: [(i, _build_section(tasks[i])) for i in here])
        for position, section in executor.map_unordered(_build_section,
                                                        [tasks[i] for i in there]):
            keep(there[position], section)
        for index, section in masters.result():
            keep(index, section)
    return [sections[i] for i in range(len(tasks))]


def read_noise_adu(manifest: Manifest) -> float | None:
    """Return the read noise in ADU of the night's first noise model (None if unknown)."""
    noise = next(iter(manifest.noise.values()), None)
    if not noise or not noise.get("gain"):
        return None
    return float(noise["read_noise"]) / float(noise["gain"]) or None


