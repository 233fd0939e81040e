"""``ccdred combine`` refuses what would destroy or mislead, and warns about mixed inputs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from astropy.io import fits

from ccdred import io

from .conftest import ccdred_command


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*ccdred_command(), "combine", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})


def test_a_single_input_needs_allow_one(sim_night, tmp_path):
    one = sim_night.files["bias"][0]
    refused = run(one, "-o", tmp_path / "m.fits")
    assert refused.returncode == 2 and "--allow-one" in refused.stderr
    assert not (tmp_path / "m.fits").exists()
    allowed = run(one, "-o", tmp_path / "m.fits", "--allow-one")
    assert allowed.returncode == 0, allowed.stderr
    assert fits.getheader(tmp_path / "m.fits")["NCOMBINE"] == 1


@pytest.mark.parametrize("force", [False, True])
def test_an_input_is_never_overwritten(sim_night, tmp_path, force):
    inputs = [tmp_path / p.name for p in sim_night.files["bias"][:3]]
    for src, dst in zip(sim_night.files["bias"][:3], inputs, strict=True):
        dst.write_bytes(Path(src).read_bytes())
    before = io.sha256(inputs[1])
    result = run(*inputs, "-o", inputs[1], *(["--force"] if force else []))
    assert result.returncode == 2
    assert "is one of the inputs" in result.stderr and inputs[1].name in result.stderr
    assert io.sha256(inputs[1]) == before
    link = tmp_path / "link.fits"  # the same file under another name
    link.symlink_to(inputs[0])
    result = run(*inputs, "-o", link, "--force")
    assert result.returncode == 2 and io.sha256(inputs[0]) != before


def test_an_existing_output_needs_force(sim_night, tmp_path):
    out = tmp_path / "m.fits"
    out.write_text("keep me")
    refused = run(*sim_night.files["bias"][:3], "-o", out)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert out.read_text() == "keep me"
    forced = run(*sim_night.files["bias"][:3], "-o", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert fits.getheader(out)["NCOMBINE"] == 3


def test_mixed_frame_types_and_exposures_warn(sim_night, tmp_path):
    mixed = run(*sim_night.files["bias"][:2], *sim_night.files["dark"][:2], "-o",
                tmp_path / "a.fits")
    assert mixed.returncode == 0, mixed.stderr
    assert "different frame types (bias, dark)" in mixed.stderr
    science = sim_night.files["science"]  # 300 s, 300 s and 120 s
    times = run(*science, "-o", tmp_path / "b.fits", "--reject", "none")
    assert times.returncode == 0 and "different exposure times (120s, 300s)" in times.stderr
    same = run(*sim_night.files["bias"][:3], "-o", tmp_path / "c.fits")
    assert same.returncode == 0 and "warning" not in same.stderr
    scaled = run(*science, "-o", tmp_path / "d.fits", "--scale", "exptime", "--reject", "none")
    assert scaled.returncode == 0 and "exposure times" not in scaled.stderr


def test_the_same_input_twice_is_used_once(sim_night, tmp_path):
    biases = sim_night.files["bias"][:3]
    result = run(*biases, biases[0], "-o", tmp_path / "m.fits")
    assert result.returncode == 0, result.stderr
    assert "used once" in result.stderr
    assert fits.getheader(tmp_path / "m.fits")["NCOMBINE"] == 3


@pytest.mark.parametrize("card,value", [("INSTRUME", "OTHERCAM"), ("XBINNING", 2),
                                        ("GAIN", 3.0)])
def test_frames_of_another_camera_are_never_combined(sim_night, tmp_path, card, value):
    biases = [tmp_path / Path(p).name for p in sim_night.files["bias"][:3]]
    for src, dst in zip(sim_night.files["bias"][:3], biases, strict=True):
        dst.write_bytes(Path(src).read_bytes())
    with fits.open(biases[2], mode="update") as hdul:
        hdul[0].header[card] = value
        if card == "GAIN":  # a gain setting, as N.I.N.A. writes it
            hdul[0].header["SWCREATE"] = "N.I.N.A. 2.0"
    result = run(*biases, "-o", tmp_path / "m.fits")
    assert result.returncode == 2, result.stderr
    assert "different cameras or camera settings" in result.stderr
    assert not (tmp_path / "m.fits").exists()


def test_a_combined_file_in_the_raw_folder_is_never_a_raw_frame(sim_night, tmp_path):
    import shutil

    import ccdred

    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    out = raw / "bias" / "my_master.fits"
    result = run(*sorted((raw / "bias").iterdir())[:3], "-o", out)
    assert result.returncode == 0, result.stderr
    plan = ccdred.plan_night(raw)
    assert out not in {p for m in plan.masters for p in m.inputs}
    assert not plan.skipped
    assert any("written by ccdred" in w for w in plan.warnings)


def test_each_input_is_parsed_by_astropy_twice_only(sim_night, tmp_path, monkeypatch):
    """Once for its header (checks and the master's provenance), once to stream its rows."""
    from collections import Counter

    from typer.testing import CliRunner

    from ccdred.cli import app

    parsed: Counter[str] = Counter()
    fromfile = fits.HDUList.fromfile.__func__  # fits.open, getheader, getdata all go there

    def counting_fromfile(cls, fileobj, *args, **kwargs):
        parsed[Path(getattr(fileobj, "name", fileobj)).name] += 1  # a path or astropy's _File
        return fromfile(cls, fileobj, *args, **kwargs)

    monkeypatch.setattr(fits.HDUList, "fromfile", classmethod(counting_fromfile))
    biases = sim_night.files["bias"][:3]
    result = CliRunner().invoke(app, ["combine", *map(str, biases), "-o",
                                      str(tmp_path / "m.fits")])
    assert result.exit_code == 0, result.output
    assert {Path(p).name: parsed[Path(p).name] for p in biases} == {
        Path(p).name: 2 for p in biases}


@pytest.mark.parametrize("fault", ["missing", "not FITS", "truncated"])
def test_a_bad_input_is_named_and_nothing_is_written(sim_night, tmp_path, fault):
    inputs = [tmp_path / Path(p).name for p in sim_night.files["bias"][:3]]
    for src, dst in zip(sim_night.files["bias"][:3], inputs, strict=True):
        dst.write_bytes(Path(src).read_bytes())
    bad = inputs[1]
    if fault == "missing":
        bad.unlink()
    elif fault == "not FITS":
        bad.write_text("a shopping list, not an image\n")
    else:
        bad.write_bytes(bad.read_bytes()[:-20000])
    result = run(*inputs, "-o", tmp_path / "m.fits")
    assert result.returncode == 2, result.stderr
    assert bad.name in result.stderr
    assert not (tmp_path / "m.fits").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.fits")]
