"""The night report: written from a run's outputs, self-contained, checked in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import ccdred
from ccdred.pipeline import ReduceOptions
from ccdred.report import write_report

from .conftest import ccdred_command


@pytest.fixture(scope="module")
def report_page(sim_night, tmp_path_factory):
    """A night with one unusable file skipped, reduced and reported with 2 worker processes."""
    raw = tmp_path_factory.mktemp("report_raw") / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    (raw / "data" / "notes.fits").write_text("not a FITS file")
    out = tmp_path_factory.mktemp("report_out")
    ccdred.reduce_night(raw, out, options=ReduceOptions(skip_bad=True))
    return write_report(out, workers=2)


def images(page: Path) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


def test_report_is_self_contained_with_every_figure(report_page):
    text = report_page.read_text()
    sources = images(report_page)
    # the night; per master a figure (dark and flat a histogram too); per science frame
    # its thumbnail in the table and its figure
    assert len(sources) == 1 + 1 + 2 + 2 + 3 * 2
    for src in sources:
        assert (report_page.parent / src).is_file() and not src.startswith(("http", "/"))
    assert "http://" not in text and "https://" not in text
    order = ["The night at a glance", "Warnings", "<h2 id='frames'>Frames", "<h2>Plan",
             "<h2>Masters", "<h2>Science frames"]
    assert [text.index(h) for h in order] == sorted(text.index(h) for h in order)
    # every thumbnail of the table links to its frame's section
    table = text[text.index("<table class='frames'>"):text.index("</table>",
                                                                 text.index("frames'>"))]
    anchors = re.findall(r"<a href='#([^']+)'><img", table)
    assert len(anchors) == 3 and all(f"<h3 id='{a}'>" in text for a in anchors)


def test_report_puts_warnings_first_and_judges_every_frame(report_page):
    text = report_page.read_text()
    warnings = text[text.index("Warnings"):text.index("<h2>Plan")]
    assert "notes.fits" in warnings and "unusable file skipped" in warnings
    qa = json.loads((report_page.parent / "qa.json").read_text(),
                    parse_constant=lambda c: pytest.fail(f"qa.json holds a bare {c}"))
    science = [s for s in qa if s["title"].startswith("science")]
    assert len(science) == 3
    verdicts = {m["verdict"] for s in qa for m in s["metrics"]}
    assert verdicts <= {"pass", "info"}
    assert all(len(s["metrics"]) == 5 for s in science)
    from ccdred.report.sections import finite

    assert finite({"a": [float("nan"), 1.0, float("inf")]}) == {"a": [None, 1.0, None]}
    assert all(s["stats"]["sky"] > 0 and s["stats"]["time"] for s in science)


def test_report_command_rebuilds_and_refuses_a_folder_without_manifest(report_page, tmp_path):
    out = report_page.parent.parent
    report_page.unlink()
    result = subprocess.run([*ccdred_command(), "report", str(out), "--workers", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and report_page.exists()
    empty = subprocess.run([*ccdred_command(), "report", str(tmp_path)], capture_output=True,
                           text=True, timeout=120)
    assert empty.returncode == 2 and "manifest" in empty.stderr


def test_a_rerun_keeps_the_figures_of_kept_products_and_redraws_changed_ones(report_page):
    out = report_page.parent.parent
    figures = sorted((report_page.parent / "figures").glob("*.png"))
    before = {f: f.stat().st_mtime_ns for f in figures}
    calls = []
    write_report(out, progress=lambda stage, done, total: calls.append((done, total)))
    assert {f: f.stat().st_mtime_ns for f in figures} == before and len(figures) == 11
    assert calls == [(6, 6)]  # 3 masters and 3 frames, all taken as kept
    # A product that changed (another reduction, same name) is drawn again.
    cache = next((report_page.parent / "cache").glob("1978*.json"))
    entry = json.loads(cache.read_text())
    cache.write_text(json.dumps({**entry, "key": "another product"}))
    # a product gone from the manifest leaves nothing behind
    (report_page.parent / "figures" / "gone.png").write_bytes(b"")
    (report_page.parent / "cache" / "gone.json").write_text("{}")
    write_report(out)
    assert not (report_page.parent / "figures" / "gone.png").exists()
    assert not (report_page.parent / "cache" / "gone.json").exists()
    changed = [f for f in figures if f.stat().st_mtime_ns != before[f]]
    assert {f.name for f in changed} == {f"{Path(cache.stem)}.png", f"{cache.stem}_thumb.png"}


@pytest.mark.parametrize("where", ["processes", "dask"])
def test_sections_drawn_in_the_run_are_taken_as_drawn_and_equal_the_report_s(
        sim_night, tmp_path, monkeypatch, where):
    """The reduction draws each science frame's section while the frame is in memory (in
    its worker process): the report takes them as drawn, byte for byte what it would draw
    from the files; a compressed product is left to the report, and a failure too."""
    from ccdred.pipeline import DaskCluster, LocalProcesses
    from ccdred.report import draw_in_run

    out = tmp_path / "out"
    executor = LocalProcesses(2) if where == "processes" else DaskCluster(local_workers=1)
    try:
        ccdred.reduce_night(sim_night.raw_dir, out, executor=executor, on_reduced=draw_in_run)
    finally:
        executor.close()
    drawn = {f.name: f.read_bytes() for f in (out / "report").rglob("*") if f.is_file()}
    assert len(drawn) == 3 * 3  # per frame: its figure, its thumbnail, its cache entry
    calls = []
    write_report(out, progress=lambda stage, done, total: calls.append((done, total)))
    assert calls[0] == (3, 6)  # the 3 science sections were taken as drawn
    shutil.rmtree(out / "report")
    write_report(out)
    again = {f.name: f.read_bytes() for f in (out / "report").rglob("*") if f.is_file()}
    assert {name: again[name] for name in drawn} == drawn
    compact = tmp_path / "compact"
    ccdred.reduce_night(sim_night.raw_dir, compact, options=ReduceOptions(compress=True),
                        on_reduced=draw_in_run)
    assert not (compact / "report").exists()
    # A failure in the worker is left to the report, which draws the section from the files.
    product = ccdred.pipeline.products.read_manifest(out).reduced()[0]
    frame = ccdred.io.read(product.path)
    entry = out / "report" / "cache" / f"{product.path.stem}.json"
    entry.unlink()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(ccdred.report.sections, "_draw_science", broken)
    assert draw_in_run(out, product, frame, frame, {}) is None
    assert not entry.exists()


def test_warnings_are_grouped_by_kind_worst_first_with_links():
    from ccdred.pipeline.products import Manifest
    from ccdred.report.page import finding_html, findings
    from ccdred.report.sections import Section

    def metric(name, verdict, detail):
        return {"name": name, "question": f"{name}?", "value": 1.0, "verdict": verdict,
                "threshold": "t", "detail": detail}

    sections = [Section(f"science: f{i}.fits", "science", anchor=f"s-f{i}", metrics=[
        metric("flatness", "fail", f"residual {i}"),
        metric("defects", "warn" if i < 3 else "pass", "d"),
        metric("dark residual", "info", "needs pixels")]) for i in range(81)]
    manifest = Manifest("0", "now", "raw", {}, {}, {"raw_dir": "raw", "warnings": ["w", "w"]},
                        ())
    found = findings(manifest, sections)
    assert [(f.verdict, len(f.sections)) for f in found] == [("fail", 81), ("warn", 3),
                                                              ("warn", 0)]
    assert found[2].text == "w (2 times)"
    line = finding_html(found[0])
    assert line.count("<li class=") == 1 and "81 frames: flatness" in line
    assert line.count("<a href='#s-f") == 81


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("headless Chromium not installed (apt-get install chromium "
                    "chromium-driver; make test does it where it can)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver)
    return webdriver.Chrome(options=options, service=service)


def test_report_opens_in_a_real_browser_with_every_image_loaded(report_page):
    browser = _browser()
    try:
        browser.get(report_page.as_uri())
        # Figures below the fold load lazily (a night has hundreds): load them all now.
        browser.execute_script("Array.from(document.images).forEach(i => i.loading = 'eager');")
        script = ("return Array.from(document.images).map(i => i.complete ? i.naturalWidth "
                  ": 0);")
        for _ in range(100):
            widths = browser.execute_script(script)
            if all(w > 0 for w in widths):
                break
            time.sleep(0.1)
        assert len(widths) == len(images(report_page)) and all(w > 0 for w in widths)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        assert browser.title == "ccdred night report"
        # the frames table sorts on a click: by sky level, then reversed
        header = browser.find_elements("css selector", "table.frames th")[5]
        assert header.text.startswith("sky")

        def skies():
            return [float(td.get_attribute("data-v")) for td in browser.find_elements(
                "css selector", "table.frames tbody tr td:nth-child(6)")]
        header.click()
        assert skies() == sorted(skies())
        header.click()
        assert skies() == sorted(skies(), reverse=True)
    finally:
        browser.quit()


def test_show_command_writes_each_figure_type(sim_night, reduced_night, tmp_path):
    raw, reduced = sim_night.files["science"][0], reduced_night.reduced[0]
    for args, name in ((["--cutout", "100,100,50"], "frame.png"), (["--hist"], "hist.png"),
                       (["--compare", "--zscale"], "compare.png")):
        files = [raw, reduced] if "--compare" in args else [reduced]
        result = subprocess.run([*ccdred_command(), "show", *map(str, files), *args, "-o",
                                 str(tmp_path / name)], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name).stat().st_size > 10_000
    outside = subprocess.run([*ccdred_command(), "show", str(reduced), "--cutout", "5000,10,50",
                              "-o", str(tmp_path / "outside.png")], capture_output=True,
                             text=True, timeout=120)
    assert outside.returncode == 2 and "outside the frame" in outside.stderr
    assert not (tmp_path / "outside.png").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    no_display = subprocess.run([*ccdred_command(), "show", str(reduced)], capture_output=True,
                                text=True, timeout=120, env=env)
    assert no_display.returncode == 2 and "-o FILE.png" in no_display.stderr


def test_night_figure_takes_mixed_missing_and_zoned_times():
    from ccdred.report.night import night_figure
    from ccdred.report.sections import Section

    def frame(time, sky):
        return Section(f"science: {sky}", "science", stats={"time": time, "sky": sky,
                                                            "noise": None, "verdict": "pass"})

    sections = [frame("2020-01-01T01:00:00Z", 1.0), frame("2020-01-01T01:10:00", 2.0),
                Section("master bias", "master", stats={"time": "2020-01-01T01:05:00",
                                                        "name": "bias"})]
    by_time = night_figure(sections)
    assert by_time.axes[-1].get_xlabel().startswith("time (UTC")
    sections[0].stats["time"] = None  # one frame without DATE-OBS: drawn in file order
    assert "file order" in night_figure(sections).axes[-1].get_xlabel()


@pytest.mark.parametrize("card", ["FILTER", "INSFLNAM"])
def test_the_frames_table_reads_the_filter_where_the_camera_wrote_it(card):
    """CAFOS writes its filter in INSFLNAM: the table said '-' for every frame of that night."""
    import numpy as np
    from astropy.io import fits

    from ccdred.report.sections import _science_stats

    frame = ccdred.Frame(np.zeros((8, 8), np.float32), header=fits.Header({card: "JohnsonV"}))
    stats = _science_stats(frame, {}, [], noise=1.0, sky=10.0)
    assert stats["filter"] == "JohnsonV"
