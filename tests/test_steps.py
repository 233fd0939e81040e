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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # the one-pass kernel, or numpy
@pytest.mark.parametrize("variances", [(True, True), (True, False), (False, True),
                                       (False, False)])
def test_flat_correct_is_the_frame_division_with_low_pixels_nan(variances, dtype):
    """Frame division's values, bit for bit, in the frame's type; NaN and LOW_FLAT where the
    flat is below min_flat or not finite."""
    rng = np.random.default_rng(len(variances) + 2 * variances[0] + variances[1])
    shape = (37, 53)
    data = rng.normal(1000, 30, shape).astype(dtype)
    data[2, 2] = np.nan
    flat_data = rng.normal(1, 0.3, shape).astype(np.float32)
    flat_data[:3, :4] = 0.0
    flat_data[5, 5], flat_data[6, 6], flat_data[7, 7] = np.nan, 0.1, np.nextafter(
        np.float32(0.1), np.float32(0))
    dq = np.where(rng.random(shape) < 0.05, np.uint16(Flag.HOT), np.uint16(0))
    flat_dq = np.where(rng.random(shape) < 0.05, np.uint16(Flag.DEAD), np.uint16(0))
    variance = rng.uniform(100, 2000, shape).astype(dtype) if variances[0] else None
    flat_variance = rng.uniform(0, 1e-3, shape).astype(np.float32) if variances[1] else None
    f = Frame(data, variance=variance, dq=dq)
    flat = Frame(flat_data, variance=flat_variance, dq=flat_dq)
    out = steps.flat_correct(f, flat, min_flat=0.1)
    low = ~(flat_data >= np.float32(0.1))
    divided = f / flat.replace(data=np.where(low, np.float32(1), flat_data))
    assert out.data.dtype == divided.data.dtype
    np.testing.assert_array_equal(out.data, np.where(low, np.nan, divided.data))
    if variance is None and flat_variance is None:
        assert out.variance is None
    else:
        np.testing.assert_array_equal(out.variance, np.where(low, np.nan, divided.variance))
    np.testing.assert_array_equal(out.dq, divided.dq | np.where(low, np.uint16(Flag.LOW_FLAT),
                                                                 np.uint16(0)))
    assert not low[6, 6] and low[7, 7] and low[5, 5]  # the limit's edges, and NaN
    with pytest.raises(ValueError, match="shape mismatch"):
        steps.flat_correct(f, Frame(np.ones((5, 5), np.float32)))


def test_divide_by_flat_refuses_other_shapes_and_types():
    from ccdred.kernels.flatfield import divide_by_flat

    image = np.ones((4, 4), np.float32)
    flags = np.zeros((4, 4), np.uint16)
    with pytest.raises(ValueError, match="flat has shape"):
        divide_by_flat(image, None, flags, image[:2, :2], None, flags, min_flat=0.1,
                       low_flag=int(Flag.LOW_FLAT))
    with pytest.raises(ValueError, match="not float32"):
        divide_by_flat(image.astype(np.float64), None, flags, image, None, flags,
                       min_flat=0.1, low_flag=int(Flag.LOW_FLAT))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # the one-pass kernel, or numpy
@pytest.mark.parametrize("master_variance", [True, False])
@pytest.mark.parametrize("scale", [1.0, 0.37, 2.5, 0.0])
def test_bias_and_dark_subtraction_are_the_frame_arithmetic(scale, master_variance, dtype):
    """``frame - master * scale``, bit for bit, in the frame's type (NaN and infinities
    included); subtracting a bias is the scale 1."""
    rng = np.random.default_rng(int(scale * 100) + 7 * master_variance)
    shape = (41, 29)
    data = rng.normal(1000, 30, shape).astype(dtype)
    data[1, 1], data[2, 2] = np.nan, np.inf
    master_data = rng.normal(300, 40, shape).astype(np.float32)
    master_data[3, 3] = np.nan
    variance = rng.uniform(100, 2000, shape).astype(dtype)
    dq = np.where(rng.random(shape) < 0.05, np.uint16(Flag.SATURATED), np.uint16(0))
    master_dq = np.where(rng.random(shape) < 0.05, np.uint16(Flag.HOT), np.uint16(0))
    f = Frame(data, variance=variance, dq=dq)
    master = Frame(master_data, dq=master_dq,
                   variance=rng.uniform(1, 90, shape).astype(np.float32) if master_variance
                   else None)
    expected = f - master * scale
    out = steps.subtract_dark(f, master, scale)
    for got, want in [(out.data, expected.data), (out.variance, expected.variance),
                      (out.dq, expected.dq)]:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    if scale == 1.0:
        bias = steps.subtract_bias(f, master)
        np.testing.assert_array_equal(bias.data, (f - master).data)
        np.testing.assert_array_equal(bias.variance, (f - master).variance)
    assert np.isnan(f.data[1, 1]) and f.dq is dq and f.variance is variance  # input untouched


def test_subtract_scaled_refuses_other_shapes_and_types():
    from ccdred.kernels.subtract import subtract_scaled

    image = np.ones((4, 4), np.float32)
    flags = np.zeros((4, 4), np.uint16)
    with pytest.raises(ValueError, match="master is"):
        subtract_scaled(image, image, flags, image[:2, :2], image, flags)
    with pytest.raises(ValueError, match="variance must be float32"):
        subtract_scaled(image, image.astype(np.float64), flags, image, image, flags)
    with pytest.raises(ValueError, match="master dq must be uint16"):
        subtract_scaled(image, image, flags, image, image, flags.astype(np.int32))


def test_repair_leaves_variance_where_the_data_could_not_be_repaired():
    """A hot pixel whose neighbours' data are all NaN keeps its value, its variance and no
    REPAIRED flag, though its neighbours' variances are numbers."""
    data = np.full((3, 3), np.nan, np.float32)
    data[1, 1] = 500
    variance = np.full((3, 3), 10, np.float32)
    variance[1, 1] = 9999
    dq = np.zeros((3, 3), np.uint16)
    dq[1, 1] = Flag.HOT
    out = steps.repair(Frame(data, variance=variance, dq=dq), flags=Flag.HOT)
    assert out.data[1, 1] == 500 and out.variance[1, 1] == 9999
    assert not out.has(Flag.REPAIRED).any()


@pytest.mark.parametrize("cfa", [None, "RGGB"])
@pytest.mark.parametrize("restricted", [False, True])
def test_repair_at_the_listed_pixels_is_the_whole_image_repair_bit_for_bit(cfa, restricted):
    """The one-pass repair of the listed pixels (data and variance) against the whole-image
    kernels it replaced: the same bits, clusters, edges, NaN neighbours and saturated
    neighbours included."""
    from ccdred.flags import REPAIRABLE
    from ccdred.steps.calibrate import _repaired_frame

    rng = np.random.default_rng(3 if cfa else 4)
    shape = (61, 47)
    data = rng.normal(100, 5, shape).astype(np.float32)
    variance = rng.lognormal(3, 0.5, shape).astype(np.float32)
    dq = np.zeros(shape, np.uint16)
    for flag, count in ((Flag.HOT, 150), (Flag.COSMIC_RAY, 120), (Flag.SATURATED, 60),
                        (Flag.DEAD, 40)):
        dq.flat[rng.integers(0, dq.size, count)] |= np.uint16(flag)
    dq[:3, :3] = Flag.HOT  # a cluster in a corner
    dq[30:36, 20:26] = Flag.COSMIC_RAY  # a block some pixels of which have no good neighbour
    data.flat[rng.integers(0, data.size, 80)] = np.nan
    variance.flat[rng.integers(0, variance.size, 200)] = np.nan
    frame = Frame(data, variance=variance, dq=dq)
    where = rng.random(shape) < 0.6 if restricted else None
    fast = steps.repair(frame, cfa=cfa, where=where)
    target = frame.has(REPAIRABLE) & (where if restricted else True)
    whole = _repaired_frame(frame, REPAIRABLE, 5, cfa, target)
    assert fast.has(Flag.REPAIRED).sum() > 150
    assert not fast.has(Flag.REPAIRED).all()  # some have no usable neighbour
    np.testing.assert_array_equal(fast.data.view(np.uint32), whole.data.view(np.uint32))
    np.testing.assert_array_equal(fast.variance.view(np.uint32),
                                  whole.variance.view(np.uint32))
    np.testing.assert_array_equal(fast.dq, whole.dq)
    np.testing.assert_array_equal(frame.data.view(np.uint32), data.view(np.uint32))


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


def test_unusable_pixels_are_those_calibration_cannot_make_right():
    data = np.full((9, 9), 100.0, np.float32)
    variance = np.full((9, 9), 25.0, np.float32)  # sky noise 5
    dq = np.zeros((9, 9), np.uint16)
    flat = np.ones((9, 9), np.float32)
    dq[1, 1], flat[1, 1] = Flag.DEAD, 0.95           # weak: the flat corrects it
    dq[1, 3], flat[1, 3] = Flag.DEAD, 0.2            # lost 80% of its signal
    dq[3, 1], variance[3, 1] = Flag.HOT, 30.0        # a modest dark, subtracted
    dq[3, 3], variance[3, 3] = Flag.HOT, 25.0 * 16   # noise 4x the sky's
    dq[5, 5] = Flag.COSMIC_RAY
    dq[7, 7] = Flag.SATURATED
    frame = Frame(data, variance=variance, dq=dq)
    where = steps.unusable_pixels(frame, flat=Frame(flat))
    assert sorted(map(tuple, np.argwhere(where).tolist())) == [(1, 3), (3, 3), (5, 5)]
    # Without a flat or a variance, nothing tells a defect can be calibrated: all repaired.
    bare = steps.unusable_pixels(frame.replace(variance=None))
    assert sorted(map(tuple, np.argwhere(bare).tolist())) == [(1, 1), (1, 3), (3, 1), (3, 3),
                                                              (5, 5)]
    out = steps.repair(frame, where=where)
    assert np.array_equal(out.dq & ~np.uint16(Flag.REPAIRED), frame.dq)  # flags unchanged
    assert np.array_equal(out.has(Flag.REPAIRED), where)
    with pytest.raises(ValueError, match="dead_response"):
        steps.unusable_pixels(frame, dead_response=1.5)


def test_hot_pixels_are_judged_against_every_colour_planes_noise():
    """The sky's noise level is the median variance of all unflagged pixels, all planes.

    A colour mosaic whose planes differ (variances spread over 1-2, 2-3, 2-3 and 3-4): the
    median is 2.5, so a hot pixel of variance 9 x 2.5 x 1.05 is repaired and one of
    9 x 2.5 x 0.95 kept. A sample of even columns only (red and one green) would put the
    median at 2 and repair both.
    """
    rng = np.random.default_rng(4)
    shape = (1024, 1024)
    variance = np.empty(shape, np.float32)
    for (row, col), low in zip(((0, 0), (0, 1), (1, 0), (1, 1)), (1.0, 2.0, 2.0, 3.0),
                               strict=True):
        variance[row::2, col::2] = rng.uniform(low, low + 1, (512, 512))
    dq = np.zeros(shape, np.uint16)
    # One green plane flagged and noisy: left out, the others (1-2, 2-3, 3-4) leave the median
    # at 2.5; counted, it would move it to 3 (threshold 27: the first hot pixel kept too).
    flagged = (slice(0, 1024, 2), slice(1, 1024, 2))
    dq[flagged], variance[flagged] = Flag.SATURATED, 1000.0
    dq[100, 100], variance[100, 100] = Flag.HOT, 9 * 2.5 * 1.05
    dq[200, 201], variance[200, 201] = Flag.HOT, 9 * 2.5 * 0.95
    frame = Frame(np.zeros(shape, np.float32), variance=variance, dq=dq)
    where = steps.unusable_pixels(frame)
    assert sorted(map(tuple, np.argwhere(where).tolist())) == [(100, 100)]


def test_repair_policy_changes_values_never_flags(sim_night, reduced_night, tmp_path):
    import ccdred
    from ccdred.pipeline import ReduceOptions

    every = ccdred.reduce_night(sim_night.raw_dir, tmp_path / "all",
                                options=ReduceOptions(repair="all"))
    none = ccdred.reduce_night(sim_night.raw_dir, tmp_path / "none",
                               options=ReduceOptions(repair=False))
    assert ReduceOptions(repair=True).repair == "all"
    for default_path, all_path, none_path in zip(reduced_night.reduced, every.reduced,
                                                 none.reduced, strict=True):
        default, all_, none_ = (ccdred.read(p) for p in (default_path, all_path, none_path))
        # hot/dead detection (and the other flags) is the same under every policy (a pixel
        # left NaN, its flat too low, also reads back as NO_DATA: not a detection)
        flags = np.uint16(Flag.HOT | Flag.DEAD | Flag.SATURATED | Flag.COSMIC_RAY
                          | Flag.LOW_FLAT)
        assert np.array_equal(default.dq & flags, all_.dq & flags)
        assert np.array_equal(default.dq & flags, none_.dq & flags)
        assert not none_.has(Flag.REPAIRED).any()
        repaired = default.has(Flag.REPAIRED)
        assert repaired.sum() < all_.has(Flag.REPAIRED).sum()
        assert not (repaired & ~all_.has(Flag.REPAIRED)).any()
        kept_hot = default.has(Flag.HOT) & ~repaired
        assert kept_hot.any()  # modest hot pixels are calibrated by the dark, not replaced
        assert np.array_equal(default.data[kept_hot], none_.data[kept_hot])
        assert default.has(Flag.COSMIC_RAY).sum() and not (default.has(Flag.COSMIC_RAY)
                                                            & ~repaired).any()
        assert default.header["REPAIR"] == "unusable"


def test_defect_kernels_on_a_known_image():
    rng = np.random.default_rng(1)
    image = rng.normal(1.0, 0.01, (64, 64)).astype(np.float32)
    image[10, 10] = 2.0
    image[20, 20] = 0.3
    assert np.argwhere(find_hot(image)).tolist() == [[10, 10]]
    assert [20, 20] in np.argwhere(find_dead(image)).tolist()
