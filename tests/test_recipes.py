"""The product table: every option a recipe reads makes its key; nothing else can be read."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from ccdred.pipeline import RECIPES, ReduceOptions
from ccdred.pipeline.masters import master_key
from ccdred.pipeline.options import OptionsView
from ccdred.pipeline.plan import DarkChoice, MasterPlan
from ccdred.pipeline.recipes import recipe_for
from ccdred.stacking import CombineOptions

CHANGED = {
    "combine": CombineOptions(method="median"),
    "hot_sigma": 6.0,
    "dead_sigma": 4.0,
    "min_flat": 0.2,
    "repair": "none",
    "dead_response": 0.3,
    "hot_noise": 5.0,
    "compress": True,
    "cosmics": False,
    "gain": 2.0,
    "read_noise": 4.0,
    "saturation": 30000.0,
    "skip_bad": True,
    "sources": {"gain": "instrument file cam.toml"},
    "optimize_dark": True,
    "overscan": "mean",
    "bayer": "GRBG",
    "cfa_flat_scaling": "global",
    "units": "electron",
}
"""Another value for every `ReduceOptions` field."""


def test_every_option_has_a_changed_value_here():
    assert set(CHANGED) == {f.name for f in fields(ReduceOptions)}
    for name, value in CHANGED.items():
        assert getattr(ReduceOptions(), name) != value


def _master(kind: str) -> MasterPlan:
    inputs = (Path("/raw/a.fits"), Path("/raw/b.fits"))
    darks = (DarkChoice("dark_3s", 1.0, "matched"),) * 2 if recipe_for(kind).dark_kinds else ()
    return MasterPlan(f"{kind}_x", kind, inputs, exptime=3.0, bias="bias", darks=darks)


def _key(master: MasterPlan, options: ReduceOptions) -> str:
    checksums = {p: p.name * 4 for p in master.inputs}
    return master_key(master, options, checksums, {"bias": "k1", "dark_3s": "k2"})


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_every_option_a_recipe_reads_changes_its_key(kind):
    master = _master(kind)
    base = _key(master, ReduceOptions())
    recipe = RECIPES[kind]
    for name in recipe.key_fields:
        changed = _key(master, replace(ReduceOptions(), **{name: CHANGED[name]}))
        assert changed != base, f"{kind}: changing {name} keeps the key"
    for name in set(CHANGED) - set(recipe.key_fields):
        same = _key(master, replace(ReduceOptions(), **{name: CHANGED[name]}))
        assert same == base, f"{kind}: {name} is not read, yet changes the key"


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_inputs_and_upstream_masters_change_the_key(kind):
    master = _master(kind)
    base = _key(master, ReduceOptions())
    other = replace(master, inputs=master.inputs[:1], darks=master.darks[:1])
    assert _key(other, ReduceOptions()) != base
    checksums = {p: "0" * 64 for p in master.inputs}
    assert master_key(master, ReduceOptions(), checksums, {"bias": "k1", "dark_3s": "k2"}) \
        != base
    if recipe_for(kind).subtract_bias:
        assert master_key(master, ReduceOptions(), {p: p.name * 4 for p in master.inputs},
                          {"bias": "changed", "dark_3s": "k2"}) != base


def test_a_recipe_cannot_read_an_option_it_does_not_declare():
    view = OptionsView(ReduceOptions(), ("hot_sigma",))
    assert view.hot_sigma == 5.0
    with pytest.raises(AttributeError, match="'dead_sigma' is read but not declared"):
        view.dead_sigma  # noqa: B018
    with pytest.raises(AttributeError, match="read-only"):
        view.hot_sigma = 3.0
    with pytest.raises(ValueError, match="no such option"):
        OptionsView(ReduceOptions(), ("hot_sigmaa",))


def test_an_unknown_kind_is_an_error_that_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown kind of master 'fringe'; known: bias, dark"):
        recipe_for("fringe")


def test_every_recipe_is_complete_and_ordered():
    seen: set[str] = {"science"}
    for kind, recipe in RECIPES.items():
        assert recipe.kind == kind and recipe.group_by in ("setup", "exptime", "filter")
        assert set(recipe.options) <= {f.name for f in fields(ReduceOptions)}
        # A recipe's inputs are calibrated by masters planned before it.
        assert all(dark in seen for dark in recipe.dark_kinds), kind
        assert not recipe.subtract_bias or "bias" in seen
        seen.add(kind)
        assert recipe.defect_flag is None or recipe.defects is not None


# --- the dark-flat kind: one table entry (and its spellings in conventions.toml) -------------

@pytest.mark.parametrize("header,name,folder", [
    ({"IMAGETYP": "DARKFLAT"}, "img_001.fits", ""),           # N.I.N.A.
    ({"IMAGETYP": "Dark Flat"}, "img_001.fits", ""),
    ({"IMAGETYP": "flat-dark"}, "img_001.fits", ""),
    ({"FRAME": "Dark Flat"}, "img_001.fits", ""),              # INDI's FRAME keyword
    ({}, "DarkFlat_3.0s_001.fits", ""),
    ({}, "Dark_Flat_001.fits", ""),
    ({}, "flat_dark_R_001.fits", ""),
    ({}, "img_001.fits", "Dark Flats"),
])
def test_dark_flats_are_recognised(tmp_path, header, name, folder):
    from astropy.io import fits

    from ccdred.inventory import classify

    path = tmp_path / folder / name if folder else tmp_path / name
    assert classify(fits.Header(header), path, tmp_path)[0] == "darkflat"


def test_a_plain_dark_stays_a_dark(tmp_path):
    from astropy.io import fits

    from ccdred.inventory import classify

    for name in ("Dark_300s_001.fits", "DARK_20151128T140848418_DK_R_0300s000_000000.fits"):
        assert classify(fits.Header(), tmp_path / name)[0] == "dark"


def _info(name, kind, exptime, filt=None):
    from ccdred.inventory import FrameInfo

    return FrameInfo(path=Path("/raw") / name, kind=kind, exptime=exptime, filter=filt,
                     shape=(10, 10))


def test_dark_flats_serve_the_flats_and_darks_the_science():
    from ccdred.pipeline import build_plan

    infos = [_info("df1.fits", "darkflat", 3.0), _info("df2.fits", "darkflat", 3.0),
             _info("d1.fits", "dark", 300.0), _info("d2.fits", "dark", 300.0),
             _info("f1.fits", "flat", 3.0, "R"), _info("f2.fits", "flat", 3.0, "R"),
             _info("s1.fits", "science", 300.0, "R")]
    plan = build_plan(infos, Path("/raw"))
    assert [m.name for m in plan.masters] == ["dark_300s", "darkflat_3s", "flat_R"]
    flat = plan.master("flat_R")
    assert [(d.master, d.scale) for d in flat.darks] == [("darkflat_3s", 1.0)] * 2
    assert plan.science[0].dark.master == "dark_300s"
    assert plan.science[0].badpix == "badpix"


@pytest.fixture(scope="module")
def cmos_like_night(tmp_path_factory):
    """No bias frames; flats of one exposure with dark-flats beside them (a CMOS habit)."""
    from ccdred.simulate import CameraModel, simulate_night

    model = CameraModel(size=128, n_stars=10, n_bias=0, n_dark=5, n_flat=5, flat_exptime=4.0,
                        n_darkflat=5, science_exptimes=(300.0,), flat_level=8000.0)
    return simulate_night(tmp_path_factory.mktemp("darkflat"), model=model, seed=5)


def _corner_tilt(night, master_path) -> float:
    """How much brighter the master flat's corners are than the truth's, against the centre."""
    import numpy as np

    import ccdred

    truth = night.truth.flat
    good = ~night.truth.dead
    corners = np.zeros(truth.shape, bool)
    for rows in (slice(0, 20), slice(-20, None)):
        for cols in (slice(0, 20), slice(-20, None)):
            corners[rows, cols] = True
    centre = np.zeros(truth.shape, bool)
    centre[44:84, 44:84] = True
    ratio = ccdred.read(master_path).data / np.where(good, truth, np.nan)
    return float(np.nanmedian(ratio[corners]) / np.nanmedian(ratio[centre]) - 1)


def test_dark_flats_take_the_pedestal_out_of_the_flat(cmos_like_night, tmp_path):
    import shutil

    import ccdred

    options = ReduceOptions(cosmics=False)
    with_df = ccdred.reduce_night(cmos_like_night.raw_dir, tmp_path / "with", options=options)
    assert with_df.plan.master("flat_R").darks[0].master == "darkflat_4s"
    raw = tmp_path / "raw"
    shutil.copytree(cmos_like_night.raw_dir, raw)
    shutil.rmtree(raw / "darkflats")
    estimated = ccdred.reduce_night(raw, tmp_path / "estimated", options=options)
    assert all(d.level_only for d in estimated.plan.master("flat_R").darks)
    assert any("pedestal is estimated from the median of dark_300s" in w
               for w in estimated.plan.warnings)
    shutil.rmtree(raw / "darks")
    bare = ccdred.reduce_night(raw, tmp_path / "bare", options=options)
    assert any("NO bias, dark-flat or dark" in w for w in bare.plan.warnings)
    # The vignetted corners get ~0.75 of the centre's light. A 1000 ADU pedestal left in
    # 8000 ADU flats lifts them by ~(1 - 0.75) * 1000 / 9000 = 2.8%; with the dark-flats the
    # corners are right to the noise of a median of 1600 pixels (~0.02%); the pedestal
    # estimated from the 300 s dark also holds its 6 e- of dark current (4 ADU: 0.01%).
    tilts = {name: _corner_tilt(cmos_like_night, result.masters["flat_R"])
             for name, result in (("with", with_df), ("estimated", estimated), ("bare", bare))}
    assert abs(tilts["with"]) < 0.002, tilts
    assert abs(tilts["estimated"]) < 0.002, tilts
    assert tilts["bare"] > 0.015, tilts
