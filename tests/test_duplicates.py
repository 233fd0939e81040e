"""Duplicated inputs are found by checksum, used once and warned about; no read noise of 0."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from astropy.io import fits

import ccdred
from ccdred.inventory import describe_file, find_duplicates
from ccdred.pipeline import ReduceOptions
from ccdred.pipeline.measure import measure_read_noise

FAST = ReduceOptions(cosmics=False)


def copy_night(sim_night, dest: Path) -> Path:
    raw = dest / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    return raw


def _copy(path: Path) -> Path:
    dest = path.with_name(f"{path.stem} (1){path.suffix}")
    shutil.copy(path, dest)
    return dest


def _symlink(path: Path) -> Path:
    dest = path.parent.parent / f"link_{path.name}"
    dest.symlink_to(path)
    return dest


def _hardlink(path: Path) -> Path:
    dest = path.parent / f"again_{path.name}"
    os.link(path, dest)
    return dest


def _copy_elsewhere(path: Path) -> Path:
    folder = path.parent.parent / "more"
    folder.mkdir(exist_ok=True)
    dest = folder / f"other_name_{path.name}"
    shutil.copy(path, dest)
    return dest


@pytest.mark.parametrize("make", [_copy, _symlink, _hardlink, _copy_elsewhere])
@pytest.mark.parametrize("folder", ["data", "bias", "flats"])
def test_the_same_data_twice_is_used_once_and_named(sim_night, tmp_path, make, folder):
    raw = copy_night(sim_night, tmp_path)
    original = sorted((raw / folder).iterdir())[0]
    twin = make(original)
    plan = ccdred.plan_night(raw)
    used = [s.input.path for s in plan.science] + [p for m in plan.masters for p in m.inputs]
    assert twin not in used and original in used
    assert len(used) == len(set(used))
    notes = [w for w in plan.warnings if "used once" in w]
    assert len(notes) == 1 and twin.name in notes[0] and original.name in notes[0]


def test_different_frames_of_equal_size_are_not_duplicates(sim_night):
    paths = sorted(Path(sim_night.raw_dir).rglob("*.fits"))
    assert len({p.stat().st_size for p in paths}) == 1  # every frame the same size
    assert find_duplicates(paths) == []


def test_a_copy_with_one_byte_changed_is_not_a_duplicate(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    original = sorted((raw / "bias").iterdir())[0]
    twin = _copy(original)
    data = bytearray(twin.read_bytes())
    data[-100] ^= 1  # a pixel, far past the header
    twin.write_bytes(bytes(data))
    assert find_duplicates([original, twin]) == []


def test_a_duplicate_science_frame_is_reduced_once(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    _copy(sorted((raw / "data").iterdir())[0])
    _symlink(sorted((raw / "bias").iterdir())[0])
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    assert len(result.reduced) == 3
    assert fits.getheader(result.masters["bias"])["NCOMBINE"] == len(
        list((raw / "bias").iterdir()))


def _without_read_noise_keywords(raw: Path) -> None:
    for path in raw.rglob("*.fits"):
        with fits.open(path, mode="update") as hdul:
            for key in ("RDNOISE", "READNOIS", "RON"):
                hdul[0].header.remove(key, ignore_missing=True)


def test_identical_frames_never_measure_a_read_noise_of_zero(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    biases = sorted((raw / "bias").iterdir())
    first = describe_file(biases[0])
    twin = describe_file(_copy(biases[0]), raw)
    second = describe_file(biases[1])
    alone = measure_read_noise([first, twin], None)
    assert alone.value is None and "no noise between" in alone.how
    measured = measure_read_noise([first, twin, second], None)
    assert measured.value == pytest.approx(7.0 / 1.5, rel=0.1)  # the simulated 7 e-, 1.5 e-/ADU


def test_a_night_whose_two_biases_are_one_does_not_get_zero_read_noise(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    biases = sorted((raw / "bias").iterdir())
    for extra in biases[1:]:
        extra.unlink()
    _copy(biases[0])
    _without_read_noise_keywords(raw)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    model = result.noise[""]
    assert model.read_noise > 0, model.read_noise_source
    assert "2 biases" not in model.read_noise_source
