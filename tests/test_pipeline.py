import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

import ccdred
from ccdred.errors import BadInputError
from ccdred.pipeline import SCIENCE_STEPS, ReduceOptions


def test_science_steps_are_in_the_right_order():
    assert SCIENCE_STEPS == ("flag_nonfinite", "flag_saturation", "overscan", "trim",
                             "noise_model",
                             "subtract_bias", "subtract_dark", "flat_correct", "flag_defects",
                             "reject_cosmics", "repair", "convert_units")


def test_products_and_manifest(sim_night, reduced_night):
    out = reduced_night.out_dir
    names = sorted(p.name for p in (out / "masters").iterdir())
    assert names == ["badpix.fits", "bias.fits", "dark_300s.fits", "flat_R.fits"]
    assert len(reduced_night.reduced) == len(sim_night.files["science"])
    manifest = json.loads((out / "manifest.json").read_text())
    roles = [p["role"] for p in manifest["products"]]
    assert roles.count("reduced") == 3 and roles.count("badpix") == 1
    reduced = [p for p in manifest["products"] if p["role"] == "reduced"]
    for product in reduced:
        assert product["parameters"]["bias"] == "bias"
        assert product["parameters"]["dark"]["master"] == "dark_300s"
        assert product["parameters"]["flat"] == "flat_R"
        assert len(product["inputs"][0]["sha256"]) == 64
    scales = sorted(p["parameters"]["dark"]["scale"] for p in reduced)
    assert scales == pytest.approx([0.4, 1.0, 1.0])


def test_reduced_header_keeps_input_and_adds_provenance(sim_night, reduced_night):
    path = reduced_night.reduced[0]
    raw = fits.getheader(sim_night.raw_dir / "data" / path.name)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        header = hdul[0].header
        assert header["OBJECT"] == raw["OBJECT"] and header["DATE-OBS"] == raw["DATE-OBS"]
        assert header["BIASFILE"] == "masters/bias.fits"
        assert header["DARKFILE"] == "masters/dark_300s.fits"
        assert header["FLATFILE"] == "masters/flat_R.fits"
        assert header["DARKSCL"] == 1.0
        assert "CCDRED" in header and len(header["FLATSHA"]) == 64
        assert any("calibrated" in str(h) for h in header["HISTORY"])
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK", "DQ"]
        assert hdul[0].data.dtype.name == "float32"
    ccd = CCDData.read(path)
    assert ccd.uncertainty is not None and ccd.mask is not None


def test_master_header_is_built_from_all_inputs(sim_night, reduced_night):
    header = fits.getheader(reduced_night.masters["dark_300s"])
    assert header["NCOMBINE"] == 7
    assert header["IMCMB001"].startswith("DARK_")
    assert len(header["IMSHA007"]) == 64
    assert header["EXPTIME"] == 300.0
    first = fits.getheader(sim_night.files["dark"][0])
    assert header["DATE-OBS"] != first["DATE-OBS"]  # the mean, not the first frame's


def test_raw_files_are_never_modified(sim_night, reduced_night):
    # reduced_night has run; the raw files' checksums are those recorded before the run.
    manifest = json.loads((reduced_night.out_dir / "manifest.json").read_text())
    for product in manifest["products"]:
        for item in product["inputs"]:
            assert ccdred.io.sha256(item["path"]) == item["sha256"]


def test_no_repair_leaves_values_but_keeps_flags(sim_night, tmp_path):
    result = ccdred.reduce_night(sim_night.raw_dir, tmp_path,
                                 options=ReduceOptions(repair=False, cosmics=False))
    frame = ccdred.read(result.reduced[0])
    assert not (frame.dq & ccdred.Flag.REPAIRED).any()
    assert (frame.dq & ccdred.Flag.HOT).any()


def test_unusable_file_refuses_the_run_and_writes_nothing(tmp_path, sim_night):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    (raw / "data" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    out = tmp_path / "out"
    with pytest.raises(BadInputError, match="broken.fits"):
        ccdred.reduce_night(raw, out)
    assert not out.exists()
    result = ccdred.reduce_night(raw, out, options=ReduceOptions(skip_bad=True, cosmics=False))
    assert len(result.reduced) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plan"]["skipped"][0]["path"].endswith("broken.fits")


def test_output_inside_raw_is_not_read_back(sim_night, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    options = ReduceOptions(cosmics=False)
    first = ccdred.reduce_night(raw, raw / "out", options=options)
    second = ccdred.reduce_night(raw, raw / "out", options=options)
    assert len(second.reduced) == len(first.reduced) == 3
    with pytest.raises(ValueError, match="cannot be the raw directory"):
        ccdred.reduce_night(raw, raw)


def test_single_flat_and_no_darks_works(sim_night, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    shutil.rmtree(raw / "darks")
    for extra in sorted((raw / "flats").iterdir())[1:]:
        extra.unlink()
    plan = ccdred.plan_night(raw)
    assert any("single flat" in w for w in plan.warnings)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=ReduceOptions(cosmics=False))
    frame = ccdred.read(result.reduced[0])
    assert np.isfinite(frame.data).all()


def test_history_lines_fit_a_card_and_break_between_items():
    """A HISTORY card holds 72 characters; astropy cut the flag counts mid-word (`N`/`O_DATA`)."""
    from ccdred.pipeline.science import _lines

    items = ["DEAD=1021", "SATURATED=600", "COSMIC_RAY=421", "LOW_FLAT=2105", "NO_DATA=72",
             "REPAIRED=2505"]
    lines = _lines("flags: ", items)
    assert len(lines) == 2 and all(len(line) <= 72 for line in lines)
    assert ", ".join(part.strip() for part in lines).removeprefix("flags: ") == ", ".join(items)
    assert _lines("flags: ", []) == ["flags: none"]
    assert _lines("flags: ", ["HOT=3"]) == ["flags: HOT=3"]
