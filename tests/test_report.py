"""The night report: written from a run's outputs, self-contained, checked in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
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
    assert len(sources) == 1 + 2 + 2 + 3  # bias; dark and flat with histograms; 3 science
    for src in sources:
        assert (report_page.parent / src).is_file() and not src.startswith(("http", "/"))
    assert "http://" not in text and "https://" not in text
    assert text.index("Warnings") < text.index("Plan") < text.index("Masters") < text.index(
        "Science frames")


def test_report_puts_warnings_first_and_judges_every_frame(report_page):
    text = report_page.read_text()
    warnings = text[text.index("Warnings"):text.index("<h2>Plan")]
    assert "notes.fits" in warnings and "unusable file skipped" in warnings
    qa = json.loads((report_page.parent / "qa.json").read_text())
    science = [s for s in qa if s["title"].startswith("science")]
    assert len(science) == 3
    verdicts = {m["verdict"] for s in qa for m in s["metrics"]}
    assert verdicts <= {"pass", "info"}
    assert all(len(s["metrics"]) == 5 for s in science)


def test_report_command_rebuilds_and_refuses_a_folder_without_manifest(report_page, tmp_path):
    out = report_page.parent.parent
    report_page.unlink()
    result = subprocess.run([*ccdred_command(), "report", str(out), "--workers", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and report_page.exists()
    empty = subprocess.run([*ccdred_command(), "report", str(tmp_path)], capture_output=True,
                           text=True, timeout=120)
    assert empty.returncode == 2 and "manifest" in empty.stderr


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
        widths = browser.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0);")
        assert len(widths) == len(images(report_page)) and all(w > 0 for w in widths)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        assert browser.title == "ccdred night report"
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
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    no_display = subprocess.run([*ccdred_command(), "show", str(reduced)], capture_output=True,
                                text=True, timeout=120, env=env)
    assert no_display.returncode == 2 and "-o FILE.png" in no_display.stderr
