from pathlib import Path

import pytest

from ccdred.inventory import FrameInfo
from ccdred.pipeline import build_plan, choose_dark
from ccdred.pipeline.plan import MasterPlan


def dark(exptime, scalable=True):
    return MasterPlan(f"dark_{exptime:g}s", "dark", (), exptime=exptime, scalable=scalable)


def test_matched_dark_is_used_as_is():
    choice = choose_dark(300.0, [dark(60), dark(300)])
    assert (choice.master, choice.scale) == ("dark_300s", 1.0)


def test_scaled_dark_takes_the_closest_exposure_ratio():
    choice = choose_dark(600.0, [dark(60), dark(300)])
    assert (choice.master, choice.scale) == ("dark_300s", 2.0)
    assert choose_dark(45.0, [dark(30), dark(60)]).master == "dark_60s"  # tie -> longer


def test_unscalable_darks_only_serve_their_own_exposure():
    assert choose_dark(600.0, [dark(300, scalable=False)]) is None
    assert choose_dark(300.0, [dark(300, scalable=False)]).scale == 1.0


def test_no_dark_for_zero_exposure():
    assert choose_dark(0.0, [dark(300)]) is None


def info(name, kind, exptime=None, filt=None, shape=(10, 10)):
    return FrameInfo(path=Path("/raw") / name, kind=kind, exptime=exptime, filter=filt,
                     shape=shape)


def test_plan_of_a_typical_night():
    infos = [info("b1.fits", "bias", 0.0), info("b2.fits", "bias", 0.0),
             info("d1.fits", "dark", 300.0), info("d2.fits", "dark", 300.0),
             info("f1.fits", "flat", 3.0, "R"), info("f2.fits", "flat", 5.0, "V"),
             info("s1.fits", "science", 600.0, "R"), info("s2.fits", "science", 60.0, "B")]
    plan = build_plan(infos, Path("/raw"))
    assert [m.name for m in plan.masters] == ["bias", "dark_300s", "flat_R", "flat_V"]
    assert plan.master("flat_R").darks[0].scale == pytest.approx(0.01)
    s1, s2 = plan.science
    assert (s1.bias, s1.dark.master, s1.dark.scale, s1.flat) == ("bias", "dark_300s", 2.0,
                                                                 "flat_R")
    assert s2.flat is None
    assert any("no flat for filter 'B'" in w for w in plan.warnings)


def test_without_bias_darks_do_not_scale_and_the_plan_says_so():
    infos = [info("d1.fits", "dark", 300.0), info("s1.fits", "science", 600.0, "R")]
    plan = build_plan(infos, Path("/raw"))
    # The dark is not scaled; only its median level (the pedestal) is taken off, and said so.
    dark = plan.science[0].dark
    assert dark.level_only and dark.scale == 1.0 and "pedestal only" in dark.reason
    assert any("no bias to scale them" in w and "pedestal is estimated" in w
               for w in plan.warnings)


def test_duplicate_stems_get_distinct_outputs():
    infos = [FrameInfo(path=Path("/raw/n1/img.fits"), kind="science", exptime=1.0, shape=(5, 5)),
             FrameInfo(path=Path("/raw/n2/img.fits"), kind="science", exptime=1.0, shape=(5, 5))]
    outputs = {s.output for s in build_plan(infos, Path("/raw")).science}
    assert outputs == {"n1__img.fits", "n2__img.fits"}


def test_setups_never_mix():
    infos = [info("b1.fits", "bias", 0.0, shape=(10, 10)),
             info("b2.fits", "bias", 0.0, shape=(20, 20)),
             info("s1.fits", "science", 1.0, shape=(20, 20))]
    plan = build_plan(infos, Path("/raw"))
    assert len(plan.masters) == 2
    bias_for_s1 = plan.science[0].bias
    assert plan.master(bias_for_s1).inputs == (Path("/raw/b2.fits"),)


def test_dark_time_scales_when_frame_and_dark_have_one():
    from dataclasses import replace

    master = replace(dark(300), darktime=302.0)
    choice = choose_dark(600.0, [master], darktime=604.5)
    assert choice.scale == pytest.approx(604.5 / 302.0)
    assert "dark time" in choice.reason
    assert choose_dark(600.0, [master]).scale == pytest.approx(2.0)  # frame without DARKTIME
