"""Each step against the simulator's truth, and the steps' contracts."""

import numpy as np
import pytest

from ccdred import Flag, Frame, steps
from ccdred.kernels.defects import find_dead, find_hot

from .conftest import SIM_MODEL


@pytest.fixture(scope="module")
def masters(reduced_night):
    import ccdred

    return {name: ccdred.read(path) for name, path in reduced_night.masters.items()}


def test_hot_pixels_recall_and_precision(sim_night, masters):
    truth = sim_night.truth
    dark = masters["dark_300s"]
    found = (dark.dq & Flag.HOT) != 0
    # A hot pixel is detectable when its excess charge is well above the master's noise:
    # per-pixel noise of a 7-frame mean is ~ sqrt(rn^2 + dark)/sqrt(7) e- ~ 3 e-, so 5 sigma
    # is ~15 e-; require recall on those above 10 sigma (30 e- in 300 s, 0.1 e-/s).
    excess = (truth.dark_current - np.median(truth.dark_current)) * SIM_MODEL.dark_exptime
    detectable = truth.hot & (excess > 30.0)
    recall = (found & detectable).sum() / detectable.sum()
    precision = (found & truth.hot).sum() / found.sum()
    assert recall > 0.97, recall
    assert precision > 0.97, precision


def test_dead_pixels_recall(sim_night, masters):
    truth = sim_night.truth
    found = (masters["flat_R"].dq & Flag.DEAD) != 0
    recall = (found & truth.dead).sum() / truth.dead.sum()
    precision = (found & truth.dead).sum() / found.sum()
    assert recall > 0.95, recall
    assert precision > 0.9, precision


def test_master_flat_equals_truth_within_expected_noise(sim_night, masters):
    truth = sim_night.truth
    flat = masters["flat_R"]
    good = ~flat.bad & ~truth.dead
    # Expected relative noise per pixel: Poisson of each flat's charge (flat_level ADU x gain
    # electrons at response 1, levels drawn 0.8-1.2x), averaged over n_flat frames.
    electrons = SIM_MODEL.flat_level * SIM_MODEL.gain * truth.flat[good]
    expected = 1.0 / np.sqrt(electrons * SIM_MODEL.n_flat)
    pull = (flat.data[good] / truth.flat[good] - 1.0) / expected
    assert abs(np.mean(flat.data[good] / truth.flat[good]) - 1.0) < 1e-3
    # Bias and dark noise add a little; the level spread of the flats a little more.
    assert 0.9 < np.std(pull) < 1.15, np.std(pull)


def test_reduced_science_equals_true_sky_within_noise(sim_night, reduced_night):
    import ccdred

    for path in reduced_night.reduced:
        frame = ccdred.read(path)
        sky = sim_night.truth.science[path.name]
        usable = ~frame.bad & (sky < np.median(sky) * 1.02)
        pull = ((frame.data - sky) / np.sqrt(frame.variance))[usable]
        assert abs(np.mean(pull)) < 0.1, (path.name, np.mean(pull))
        assert 0.95 < np.std(pull) < 1.05, (path.name, np.std(pull))


def test_science_flags_saturated_hot_and_dead(sim_night, reduced_night):
    import ccdred

    for path in reduced_night.reduced:
        frame = ccdred.read(path)
        saturated = sim_night.truth.saturated[path.name]
        assert np.all((frame.dq[saturated] & Flag.SATURATED) != 0)
        assert np.all((frame.dq[sim_night.truth.dead] & Flag.DEAD) != 0)


def test_repaired_pixels_stay_flagged_and_look_like_neighbours(reduced_night):
    import ccdred

    frame = ccdred.read(reduced_night.reduced[0])
    repaired = (frame.dq & Flag.REPAIRED) != 0
    assert repaired.any()
    assert np.all((frame.dq[repaired] & (Flag.HOT | Flag.DEAD | Flag.COSMIC_RAY | Flag.LOW_FLAT
                                         | Flag.NO_DATA)) != 0)
    assert np.all(np.isfinite(frame.data))


def frame(value=100.0, shape=(20, 20)):
    rng = np.random.default_rng(0)
    return Frame(rng.normal(value, 1.0, shape).astype(np.float32))


@pytest.mark.parametrize("call", [
    lambda f: steps.flag_saturation(f, 101.0),
    lambda f: steps.add_noise_model(f, gain=2.0, read_noise=5.0),
    lambda f: steps.subtract_bias(f, f),
    lambda f: steps.subtract_dark(f, f, 0.5),
    lambda f: steps.flat_correct(f, f * 0.01),
    lambda f: steps.repair(f.with_flags(f.data > 101.0, Flag.HOT)),
    lambda f: steps.find_hot_pixels(f),
    lambda f: steps.find_dead_pixels(f),
])
def test_steps_do_not_change_their_input(call):
    f = frame()
    before = (f.data.copy(), f.dq.copy())
    out = call(f)
    assert out is not f
    assert np.array_equal(f.data, before[0]) and np.array_equal(f.dq, before[1])


@pytest.mark.parametrize("call,message", [
    (lambda f: steps.flag_saturation(f, -1.0), "saturation level must be positive"),
    (lambda f: steps.add_noise_model(f, gain=0.0, read_noise=5.0), "gain must be positive"),
    (lambda f: steps.subtract_dark(f, f, -1.0), "dark scale"),
    (lambda f: steps.flat_correct(f, f, min_flat=0.0), "min_flat"),
    (lambda f: steps.repair(f, box=4), "odd"),
    (lambda f: steps.find_hot_pixels(f, k=0), "k must be positive"),
    (lambda f: steps.subtract_bias(f, frame(shape=(10, 20))), "shape mismatch"),
])
def test_steps_refuse_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(frame())


def test_flat_correct_never_writes_infinity():
    f = frame()
    flat_data = np.ones((20, 20), np.float32)
    flat_data[3, 3] = 0.0
    flat_data[4, 4] = -2.0
    out = steps.flat_correct(f, Frame(flat_data))
    assert not np.isinf(out.data).any()
    assert out.dq[3, 3] & Flag.LOW_FLAT and out.dq[4, 4] & Flag.LOW_FLAT


def test_repair_uses_good_neighbours_only():
    data = np.full((9, 9), 10.0, np.float32)
    data[4, 4] = 1e6
    data[4, 5] = 1e6
    f = Frame(data).with_flags(data > 100, Flag.HOT)
    out = steps.repair(f)
    assert out.data[4, 4] == 10.0 and out.data[4, 5] == 10.0
    assert out.dq[4, 4] & Flag.REPAIRED and out.dq[4, 4] & Flag.HOT


def test_defect_kernels_on_a_known_image():
    rng = np.random.default_rng(1)
    image = rng.normal(1.0, 0.01, (64, 64)).astype(np.float32)
    image[10, 10] = 2.0
    image[20, 20] = 0.3
    assert np.argwhere(find_hot(image)).tolist() == [[10, 10]]
    assert [20, 20] in np.argwhere(find_dead(image)).tolist()
