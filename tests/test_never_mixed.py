"""Wrong science with exit 0, part 1: cameras never mixed, product names never collide."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred import io
from ccdred.pipeline import ReduceOptions
from ccdred.pipeline.plan import filter_labels

from .conftest import ccdred_command

FAST = ReduceOptions(cosmics=False)


def copy_night(sim_night, dest: Path) -> Path:
    raw = dest / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    return raw


def set_cards(path: Path, **cards) -> None:
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            if value is None:
                hdul[0].header.remove(key, ignore_missing=True)
            else:
                hdul[0].header[key] = value


def second_camera(raw: Path, folder: str, offset: float = 0.0, **cards) -> list[Path]:
    """Copy every frame of the night into ``raw/folder`` as another camera's (new header cards,
    ``offset`` ADU added to every pixel)."""
    copies = []
    for path in sorted(p for p in raw.rglob("*.fits") if folder not in p.parts):
        dest = raw / folder / path.relative_to(raw)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data.astype(np.float64) + offset
        for key, value in cards.items():
            header[key] = value
        fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16), header=header).writeto(dest)
        copies.append(dest)
    return copies


def instruments_of(paths) -> set[str]:
    return {fits.getheader(p).get("INSTRUME", "").strip() for p in paths}


def assert_never_mixed(plan) -> None:
    """Every master's inputs come from one setup, and every frame gets masters of its own."""
    by_name = {m.name: m for m in plan.masters}
    assert len({m.name.casefold() for m in plan.masters}) == len(plan.masters)
    for master in plan.masters:
        assert len(instruments_of(master.inputs)) <= 1, master.name
        for choice in master.darks:
            if choice is not None:
                assert by_name[choice.master].setup == master.setup
        if master.bias:
            assert by_name[master.bias].setup == master.setup
    for sci in plan.science:
        for name in (sci.bias, sci.dark.master if sci.dark else None, sci.flat):
            if name:
                assert by_name[name].setup == sci.input.setup, (sci.input.path, name)


@pytest.mark.parametrize("cards", [
    {"INSTRUME": "OTHERCAM"},                      # another camera, same shape and settings
    {"INSTRUME": "OTHERCAM", "GAIN": 3.0},         # and another gain
    {"XBINNING": 2, "YBINNING": 2},                # the same camera, binned
])
def test_two_cameras_in_one_folder_get_their_own_masters(sim_night, tmp_path, cards):
    raw = copy_night(sim_night, tmp_path)
    second_camera(raw, "cam2", offset=400.0, **cards)
    plan = ccdred.plan_night(raw)
    assert_never_mixed(plan)
    assert len(plan.setups) == 2
    assert sum(m.kind == "bias" for m in plan.masters) == 2
    assert len(plan.science) == 6


def test_two_cameras_reduce_apart_end_to_end(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    second_camera(raw, "cam2", offset=400.0, INSTRUME="OTHERCAM")
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    assert_never_mixed(result.plan)
    biases = sorted(n for n in result.masters if n.startswith("bias"))
    assert len(biases) == 2 and all("othercam" in n or "simcam" in n for n in biases)
    levels = {n: float(np.median(io.read(result.masters[n]).data)) for n in biases}
    high, low = max(levels.values()), min(levels.values())
    assert high - low == pytest.approx(400.0, abs=2.0)  # never one master from both
    assert len(result.reduced) == 6
    # the same science data calibrated with its own camera's masters: the same result
    first = {p.name: io.read(p) for p in result.reduced if "cam2" not in p.name}
    for path in result.reduced:
        if "cam2" in path.name:
            twin = first[path.name.removeprefix("cam2__")]
            diff = io.read(path).data - twin.data
            assert abs(float(np.nanmedian(diff))) < 1.0


def test_instrument_names_differing_in_case_or_spaces_are_one_camera(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    for path in (raw / "flats").iterdir():
        set_cards(path, INSTRUME="simcam ")
    for path in (raw / "bias").iterdir():
        set_cards(path, INSTRUME=None)  # no INSTRUME: the night's only camera
    plan = ccdred.plan_night(raw)
    assert len(plan.setups) == 1
    assert all(s.flat and s.bias for s in plan.science)


def test_unnamed_frames_in_a_night_of_two_cameras_serve_no_named_camera(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    second_camera(raw, "cam2", INSTRUME="OTHERCAM")
    for path in (raw / "bias").iterdir():
        set_cards(path, INSTRUME=None)
    plan = ccdred.plan_night(raw)
    assert_never_mixed(plan)
    assert any("name no camera" in w for w in plan.warnings)
    simcam = [s for s in plan.science if "cam2" not in s.input.path.parts]
    assert all(s.bias is None for s in simcam)


# --- product names ------------------------------------------------------------------------

@pytest.mark.parametrize("names", [
    ("r'", "r"), ("H alpha", "H-alpha"), ("R", "r"), ("none", None), ("O III", "O/III"),
    ("Hα", "H?"),
])
def test_filter_labels_never_collide(names):
    labels = filter_labels(names)
    assert len({v.casefold() for v in labels.values()}) == len(set(names))
    assert all(label and "/" not in label and " " not in label for label in labels.values())


def test_filter_labels_keep_plain_names():
    assert filter_labels(["R", "H-Alpha", "JohnsonV", "Luminance", None]) == {
        "R": "R", "H-Alpha": "H-Alpha", "JohnsonV": "JohnsonV", "Luminance": "Luminance",
        "": "none"}


def _two_filter_night(sim_night, tmp_path: Path, first: str, second: str) -> Path:
    """Half of the flats and one science frame of filter ``second``, the rest ``first``;
    the ``second`` flats are made 20% brighter in one quarter so that a wrong flat shows."""
    raw = copy_night(sim_night, tmp_path)
    for i, path in enumerate(sorted((raw / "flats").iterdir())):
        set_cards(path, FILTER=first if i % 2 else second)
        if i % 2 == 0:
            with fits.open(path, mode="update") as hdul:
                data = hdul[0].data.astype(np.float64)
                data[:128] *= 1.2
                hdul[0].data = np.clip(data, 0, 65535).astype(np.uint16)
    for i, path in enumerate(sorted((raw / "data").iterdir())):
        set_cards(path, FILTER=second if i == 0 else first)
    return raw


@pytest.mark.parametrize("first,second", [("r", "r'"), ("H-alpha", "H alpha"), ("r", "R")])
def test_each_frame_gets_the_flat_of_its_own_filter(sim_night, tmp_path, first, second):
    raw = _two_filter_night(sim_night, tmp_path, first, second)
    plan = ccdred.plan_night(raw)
    flats = {m.filter: m for m in plan.masters if m.kind == "flat"}
    assert set(flats) == {first, second}
    assert flats[first].name.casefold() != flats[second].name.casefold()
    for sci in plan.science:
        assert plan.master(sci.flat).filter == sci.input.filter
        assert all(fits.getheader(p)["FILTER"] == sci.input.filter
                   for p in plan.master(sci.flat).inputs)


def test_filters_alike_in_file_names_give_distinct_products(sim_night, tmp_path):
    raw = _two_filter_night(sim_night, tmp_path, "r", "r'")
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    flats = sorted((tmp_path / "out" / "masters").glob("flat_*.fits"))
    assert len(flats) == 2
    headers = {fits.getheader(p)["FILTER"]: p for p in flats}
    assert set(headers) == {"r", "r'"}
    ratio = {f: float(np.median(d[:128]) / np.median(d[128:]))
             for f, p in headers.items() if (d := io.read(p).data) is not None}
    assert ratio["r'"] == pytest.approx(1.2, rel=0.02)
    assert ratio["r"] == pytest.approx(1.0, rel=0.02)
    for path in result.reduced:
        header = fits.getheader(path)
        assert fits.getheader(tmp_path / "out" / header["FLATFILE"])["FILTER"] == (
            header["FILTER"])


def test_the_plan_prints_the_true_filter_names(sim_night, tmp_path):
    raw = _two_filter_night(sim_night, tmp_path, "[r]", "r'")
    result = subprocess.run([*ccdred_command(), "reduce", str(raw), "-o", str(tmp_path / "o"),
                             "--dry-run"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    assert "filter '[r]'" in result.stdout and "filter \"r'\"" in result.stdout


def test_reduced_names_never_collide(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    science = sorted((raw / "data").iterdir())
    gz = science[0].with_name(science[0].name + ".gz")
    import gzip

    with fits.open(science[1]) as hdul:  # other data, the same stem
        hdul[0].header["OBJECT"] = "another"
        with gzip.open(gz, "wb") as handle:
            hdul.writeto(handle)
    (raw / "DATA").mkdir()  # a folder differing in case only
    upper = raw / "DATA" / science[2].name.upper()
    with fits.open(science[2]) as hdul:
        hdul[0].header["OBJECT"] = "third"
        hdul.writeto(upper)
    plan = ccdred.plan_night(raw)
    names = [s.output for s in plan.science]
    assert len(plan.science) == 5
    assert len({n.casefold() for n in names}) == 5
