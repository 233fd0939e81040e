"""The combine engine against slow references (numpy, astropy sigma_clip)."""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clip

from ccdred import Frame, combine
from ccdred.stacking import rows_per_block


def stack_with_outliers(n, rows=24, cols=31, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    stack = rng.normal(100.0, 5.0, (n, rows, cols)).astype(dtype)
    hits = rng.random(stack.shape) < 0.05
    stack[hits] += rng.uniform(100, 1000, hits.sum()).astype(dtype)
    holes = rng.random(stack.shape) < 0.03
    stack[holes] = np.nan
    return stack


def frames(stack):
    return [Frame(plane) for plane in stack]


@pytest.mark.parametrize("n", [3, 7, 100])
@pytest.mark.parametrize("method", ["median", "mean"])
def test_no_rejection_matches_numpy(n, method):
    stack = stack_with_outliers(n)
    result = combine(frames(stack), method=method, reject="none")
    reference = (np.nanmedian if method == "median" else np.nanmean)(stack.astype(np.float64),
                                                                   axis=0)
    np.testing.assert_allclose(result.frame.data, reference, rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(result.count, np.isfinite(stack).sum(axis=0))


@pytest.mark.parametrize("n", [3, 7, 100])
@pytest.mark.parametrize("centre,spread,stdfunc", [("median", "mad", "mad_std"),
                                                   ("median", "std", "std"),
                                                   ("mean", "std", "std")])
@pytest.mark.parametrize("maxiters", [1, 5, 0])
def test_sigclip_matches_astropy(n, centre, spread, stdfunc, maxiters):
    stack = stack_with_outliers(n, seed=n)
    result = combine(frames(stack), method="mean", reject="sigclip", sigma_low=2.5,
                     sigma_high=3.0, maxiters=maxiters, centre=centre, spread=spread, nkeep=0)
    clipped = sigma_clip(np.ma.masked_invalid(stack.astype(np.float64)), sigma_lower=2.5,
                         sigma_upper=3.0, maxiters=maxiters or None, cenfunc=centre,
                         stdfunc=stdfunc, axis=0)
    np.testing.assert_array_equal(result.count, clipped.count(axis=0))
    np.testing.assert_allclose(result.frame.data, clipped.mean(axis=0).filled(np.nan),
                               rtol=1e-5, equal_nan=True)


def test_small_stack_outlier_is_rejected_with_median_mad():
    # With 3 frames a one-pass mean/std clip can never reject: median/MAD can.
    stack = np.array([[[100.0]], [[101.0]], [[5000.0]]], np.float32)
    result = combine(frames(stack), method="mean", reject="sigclip")
    assert result.count[0, 0] == 2
    assert result.frame.data[0, 0] == pytest.approx(100.5)
    naive = combine(frames(stack), method="mean", reject="sigclip", centre="mean",
                    spread="std", maxiters=1, nkeep=0)
    assert naive.count[0, 0] == 3


def _astropy_clip_with_spread(stack, spread, sigma_low, sigma_high, maxiters):
    """astropy's sigma_clip about the median with a given spread function (the oracle).

    ``copy=False``, as ccdproc calls it: the last bounds decide for every value, as in
    astropy's compiled path (with ``copy=True`` its Python path keeps earlier rejections).
    One difference is by design: when a pass rejects every value of a pixel, astropy's next
    bounds are NaN and every value comes back; ccdred keeps them rejected (``nkeep`` is the
    floor), so here such pixels count as all rejected.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        clipped, lower, _ = sigma_clip(
            np.ma.masked_invalid(stack.astype(np.float64)), sigma_lower=sigma_low,
            sigma_upper=sigma_high, maxiters=maxiters or None, cenfunc="median",
            stdfunc=spread, axis=0, copy=False, return_bounds=True)
    clipped[:, np.isnan(lower).reshape(stack.shape[1:])] = np.ma.masked
    return clipped


def _noise_model_spread(gain, read_noise, snoise):
    """IRAF's ccdclip sigma from the median of the kept values, in ADU."""
    def spread(data, axis=None):
        median = np.nanmedian(data, axis=axis)
        return np.sqrt((read_noise / gain) ** 2 + np.abs(median) / gain + (snoise * median) ** 2)
    return spread


def _winsorized_spread(data, axis=None):
    """Siril's winsorized sigma: the std of values pulled in to median +- 1.5 sigma, times
    1.134, refined (at most 10 times) until it changes by no more than 0.05%."""
    centre = np.nanmedian(data, axis=axis, keepdims=True)
    spread = np.nanstd(data, axis=axis, keepdims=True)
    done = np.zeros(spread.shape, bool)
    for _ in range(10):
        winsorized = np.clip(data, centre - 1.5 * spread, centre + 1.5 * spread)
        refined = 1.134 * np.nanstd(winsorized, axis=axis, keepdims=True)
        converged = np.abs(refined - spread) <= 5e-4 * np.maximum(spread, 1e-30)
        spread = np.where(done, spread, refined)
        done |= converged
    return np.squeeze(spread, axis=axis)


@pytest.mark.parametrize("n", [3, 7, 100])
@pytest.mark.parametrize("maxiters", [1, 5, 0])
@pytest.mark.parametrize("snoise", [0.0, 0.02])
def test_ccdclip_matches_astropy_with_the_noise_model_spread(n, maxiters, snoise):
    gain, read_noise = 2.0, 10.0  # sigma ~ 23 ADU at 1000 ADU
    rng = np.random.default_rng(n)
    stack = rng.normal(1000.0, 23.0, (n, 24, 31)).astype(np.float32)
    hits = rng.random(stack.shape) < 0.05
    stack[hits] += rng.uniform(100, 1000, hits.sum()).astype(np.float32)
    stack[rng.random(stack.shape) < 0.03] = np.nan
    result = combine(frames(stack), method="mean", reject="ccdclip", gain=gain,
                     read_noise=read_noise, snoise=snoise, sigma_low=2.5, sigma_high=3.0,
                     maxiters=maxiters, nkeep=0)
    clipped = _astropy_clip_with_spread(stack, _noise_model_spread(gain, read_noise, snoise),
                                        2.5, 3.0, maxiters)
    np.testing.assert_array_equal(result.count, clipped.count(axis=0))
    np.testing.assert_allclose(result.frame.data, clipped.mean(axis=0).filled(np.nan),
                               rtol=1e-5, equal_nan=True)
    assert (result.count < np.isfinite(stack).sum(axis=0)).sum() > 0.5 * hits.any(axis=0).sum()


@pytest.mark.parametrize("n", [3, 7, 100])
@pytest.mark.parametrize("maxiters", [1, 5, 0])
def test_winsorized_matches_astropy_with_the_winsorized_spread(n, maxiters):
    stack = stack_with_outliers(n, seed=n + 1)
    result = combine(frames(stack), method="mean", reject="winsorized", sigma_low=2.5,
                     sigma_high=3.0, maxiters=maxiters, nkeep=0)
    clipped = _astropy_clip_with_spread(stack, _winsorized_spread, 2.5, 3.0, maxiters)
    np.testing.assert_array_equal(result.count, clipped.count(axis=0))
    np.testing.assert_allclose(result.frame.data, clipped.mean(axis=0).filled(np.nan),
                               rtol=1e-5, equal_nan=True)


def test_winsorized_clip_keeps_gaussian_values_and_rejects_hits():
    rng = np.random.default_rng(8)
    stack = rng.normal(0.0, 1.0, (15, 100, 100)).astype(np.float32)
    clean = combine(frames(stack), method="mean", reject="winsorized")
    # A spread from a pixel's own 15 values is noisy: |x - median| > 3 s is then about as
    # likely as for Student's t with 14 degrees of freedom, 1%, not the Gaussian 0.27%.
    assert 1 - clean.count.mean() / 15 < 0.02
    stack[3, ::5, ::5] += 40.0
    hit = combine(frames(stack), method="mean", reject="winsorized")
    assert np.all(hit.count[::5, ::5] < 15)


def _per_pixel(stack, reduce):
    """Apply ``reduce`` to each pixel's valid values (NaN where it returns nothing)."""
    out = np.full(stack.shape[1:], np.nan)
    for index in np.ndindex(*stack.shape[1:]):
        values = stack[(slice(None), *index)].astype(np.float64)
        out[index] = reduce(np.sort(values[np.isfinite(values)]))
    return out


@pytest.mark.parametrize("n", [3, 9, 100])
@pytest.mark.parametrize("nlow,nhigh", [(1, 1), (0, 2), (2, 0)])
def test_minmax_matches_sorted_trim(n, nlow, nhigh):
    stack = stack_with_outliers(n, seed=n)
    result = combine(frames(stack), method="mean", reject="minmax", nlow=nlow, nhigh=nhigh,
                     nkeep=0)

    def trimmed_mean(values):
        kept = values[min(nlow, values.size): values.size - nhigh]
        return kept.mean() if kept.size else np.nan

    np.testing.assert_allclose(result.frame.data, _per_pixel(stack, trimmed_mean), rtol=1e-5,
                               equal_nan=True)


@pytest.mark.parametrize("n", [3, 20, 100])
def test_pclip_matches_percentile_window(n):
    stack = stack_with_outliers(n, seed=n)
    result = combine(frames(stack), method="mean", reject="pclip", pclip=(10, 90), nkeep=0)

    def inside_mean(values):
        if values.size == 0:
            return np.nan
        lo, hi = np.percentile(values, [10, 90])
        kept = values[(values >= lo) & (values <= hi)]  # none of 2 values lies inside
        return kept.mean() if kept.size else np.nan

    np.testing.assert_allclose(result.frame.data, _per_pixel(stack, inside_mean), rtol=1e-5,
                               equal_nan=True)


def test_nkeep_floors_the_count():
    stack = stack_with_outliers(7)
    result = combine(frames(stack), method="mean", reject="sigclip", sigma_low=0.1,
                     sigma_high=0.1, nkeep=4)
    valid = np.isfinite(stack).sum(axis=0)
    assert np.all(result.count >= np.minimum(valid, 4))


def test_weighted_mean():
    stack = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 4.0)]).astype(np.float32)
    result = combine(frames(stack), method="mean", reject="none", weights=[3.0, 1.0])
    np.testing.assert_allclose(result.frame.data, (3 * 1.0 + 4.0) / 4.0)


def test_masked_inputs_are_ignored():
    stack = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 20.0)]).astype(np.float32)
    dq = np.zeros((2, 2), np.uint16)
    dq[0, 0] = 1
    result = combine([Frame(stack[0], dq=dq), Frame(stack[1])], method="mean", reject="none")
    assert result.frame.data[0, 0] == 20.0
    assert result.count[0, 0] == 1


def test_all_missing_is_flagged_no_data():
    stack = np.full((3, 2, 2), np.nan, np.float32)
    stack[:, 1, 1] = 5.0
    result = combine(frames(stack), reject="none")
    assert result.count[0, 0] == 0
    assert result.frame.dq[0, 0] & 32
    assert result.frame.data[1, 1] == 5.0


@pytest.mark.parametrize("method,factor", [("mean", 1.0), ("median", np.pi / 2)])
@pytest.mark.parametrize("n", [9, 40])
def test_variance_from_scatter_matches_sigma2_over_n(method, factor, n):
    sigma = 3.0
    rng = np.random.default_rng(n)
    stack = rng.normal(50.0, sigma, (n, 200, 200)).astype(np.float32)
    result = combine(frames(stack), method=method, reject="none")
    expected = factor * sigma**2 / n
    # The mean of 40,000 per-pixel estimates is good to ~1%; the median's factor is the
    # large-n limit, ~4% off at n=9.
    assert np.mean(result.frame.variance) == pytest.approx(expected, rel=0.06)
    # And the estimate describes the real scatter of the combined image.
    assert np.var(result.frame.data) == pytest.approx(expected, rel=0.08)


def test_variance_propagated_from_inputs():
    stack = np.ones((4, 3, 3), np.float32)
    inputs = [Frame(p, variance=np.full((3, 3), 2.0 * (i + 1), np.float32))
              for i, p in enumerate(stack)]
    result = combine(inputs, method="mean", reject="none")
    np.testing.assert_allclose(result.frame.variance, (2 + 4 + 6 + 8) / 16)


def test_scaling_by_median_normalises_levels():
    rng = np.random.default_rng(3)
    base = rng.normal(1.0, 0.01, (40, 40))
    stack = np.stack([base * level for level in (1000.0, 2000.0, 3000.0)]).astype(np.float32)
    result = combine(frames(stack), method="mean", reject="none", scale="median")
    np.testing.assert_allclose(result.frame.data / base, 2000.0, rtol=1e-3)
    np.testing.assert_allclose(result.scales * 2, [1.0, 2.0, 3.0], rtol=1e-3)


def test_zero_offsets_remove_additive_levels():
    rng = np.random.default_rng(4)
    base = rng.normal(0.0, 1.0, (40, 40))
    stack = np.stack([base + level for level in (10.0, 20.0, 60.0)]).astype(np.float32)
    result = combine(frames(stack), method="mean", reject="none", zero="median")
    np.testing.assert_allclose(result.frame.data - base, 30.0, atol=0.05)


def write_stack(tmp_path, stack):
    paths = []
    for i, plane in enumerate(stack):
        path = tmp_path / f"f{i}.fits"
        fits.PrimaryHDU(np.round(plane).astype(np.uint16)).writeto(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("reject", ["none", "sigclip", "minmax", "pclip", "winsorized",
                                    "ccdclip"])
def test_block_size_does_not_change_the_answer(tmp_path, reject):
    rng = np.random.default_rng(5)
    stack = rng.normal(1000, 20, (6, 64, 48))
    paths = write_stack(tmp_path, stack)
    whole = combine(paths, method="mean", reject=reject, gain=1.0, read_noise=5.0)
    # A limit that forces blocks of a few rows.
    tiny = 64 * 48 * 10 + 48 * (6 * 4 + 8) * 3
    blocks = combine(paths, method="mean", reject=reject, gain=1.0, read_noise=5.0,
                     memory_limit=tiny)
    assert rows_per_block(6, (64, 48), tiny) == 3
    np.testing.assert_array_equal(whole.frame.data, blocks.frame.data)
    np.testing.assert_array_equal(whole.count, blocks.count)


def test_every_block_is_combined_by_one_compiled_kernel(tmp_path, monkeypatch):
    """The last, shorter block is contiguous too: no second kernel for another array layout.

    A second layout is a second compile on the first run and a second load on every run.
    """
    from ccdred.kernels.combine import combine_block
    from ccdred.stacking import stack as stack_module

    # Blocks of 8 rows of values (4 with variances): 61 rows end in a shorter block.
    monkeypatch.setattr(stack_module, "BLOCK_BYTES", 6 * 48 * 4 * 8)
    rng = np.random.default_rng(5)
    stack = rng.normal(1000, 20, (6, 61, 48))
    combine(write_stack(tmp_path, stack), method="median", reject="none")
    with_variance = [Frame(plane.astype(np.float32), variance=np.full(plane.shape, 4.0,
                                                                      np.float32))
                     for plane in stack]
    combine(with_variance, method="mean", reject="sigclip")
    layouts = {(signature[0].layout, signature[1].layout)
               for signature in combine_block.signatures}
    assert layouts == {("C", "C")}


class _BrokenRows:
    """A row source whose reads fail, naming it."""

    def __init__(self, name: str, shape: tuple[int, int]) -> None:
        self.name, self.shape = name, shape

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        raise OSError(f"{self.name}: the disk went away")

    def read_variance_rows(self, start: int, stop: int) -> None:
        return None


def test_a_failed_read_names_the_first_input_that_failed():
    good = Frame(np.ones((8, 8), np.float32))
    inputs = [good, _BrokenRows("first", (8, 8)), _BrokenRows("second", (8, 8)), good]
    with pytest.raises(OSError, match="^first: "):
        combine(inputs, method="median", reject="none")


def test_files_and_frames_give_the_same_result(tmp_path):
    rng = np.random.default_rng(6)
    stack = np.round(rng.normal(1000, 20, (5, 30, 20)))
    paths = write_stack(tmp_path, stack)
    from_files = combine(paths, method="median", reject="none")
    from_frames = combine(frames(stack.astype(np.float32)), method="median", reject="none")
    np.testing.assert_array_equal(from_files.frame.data, from_frames.frame.data)


@pytest.mark.parametrize("dtype,scaling", [
    (np.uint8, None), (np.int16, None), (np.uint16, None), (np.int32, None),
    (np.uint32, None), (np.float32, None), (np.float64, None),
    (np.int16, (0.5, 100.0)),  # BSCALE, BZERO: a scaled integer image
])
def test_every_fits_image_type_combines_as_its_values(tmp_path, dtype, scaling):
    rng = np.random.default_rng(7)
    top = {np.uint8: 200, np.int16: 15000}.get(dtype, 40000)
    stack = rng.uniform(0, top, (5, 20, 30))
    if np.dtype(dtype).kind == "f":
        stack[rng.random(stack.shape) < 0.02] = np.nan
    else:
        stack = np.round(stack)
    paths = []
    for i, plane in enumerate(stack):
        hdu = fits.PrimaryHDU(plane.astype(dtype))
        if scaling is not None:
            hdu.scale("int16", bscale=scaling[0], bzero=scaling[1])
        hdu.writeto(tmp_path / f"f{i}.fits")
        paths.append(tmp_path / f"f{i}.fits")
    # The values a reader sees (scaling applied), as float32: ccdred's working precision.
    values = np.stack([fits.getdata(p).astype(np.float32) for p in paths]).astype(np.float64)
    if scaling is not None:
        assert fits.getheader(paths[0])["BSCALE"] == scaling[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        median = np.nanmedian(values, axis=0)
    np.testing.assert_array_equal(combine(paths, method="median", reject="none").frame.data,
                                  median.astype(np.float32))
    clipped = _astropy_clip_with_spread(values.astype(np.float32), "mad_std", 3.0, 3.0, 0)
    result = combine(paths, method="mean", reject="sigclip", spread="mad", nkeep=0)
    np.testing.assert_array_equal(result.count, clipped.count(axis=0))
    np.testing.assert_allclose(result.frame.data, clipped.mean(axis=0).filled(np.nan),
                               rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("compressed", [False, True])
def test_infinite_values_in_files_count_as_missing(tmp_path, compressed):
    planes = np.full((3, 4, 5), 10.0, np.float32)
    planes[1] = 20.0
    planes[0, 1, 1] = np.inf
    planes[2, 2, 2] = -np.inf
    paths = []
    for i, plane in enumerate(planes):
        path = tmp_path / f"f{i}.fits"
        if compressed:
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
                plane, compression_type="GZIP_1", quantize_level=0.0)]).writeto(path)
        else:
            fits.PrimaryHDU(plane).writeto(path)
        paths.append(path)
    result = combine(paths, method="mean", reject="none")
    assert result.count[1, 1] == result.count[2, 2] == 2
    assert result.frame.data[1, 1] == 15.0  # the two finite values
    assert result.frame.data[2, 2] == 15.0
    assert result.frame.data[0, 0] == pytest.approx(40.0 / 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_dtype(dtype):
    result = combine(frames(stack_with_outliers(3)), dtype=dtype, reject="none")
    assert result.frame.data.dtype == dtype


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "average"}, "method must be one of"),
    ({"reject": "clip"}, "reject must be one of"),
    ({"sigma_low": 0}, "must be positive"),
    ({"reject": "minmax", "nlow": 2, "nhigh": 1}, "leaves nothing"),
    ({"pclip": (90, 10)}, "pclip"),
    ({"weights": [1, 2]}, "weights must be 3"),
    ({"memory_limit": 10}, "too small"),
    ({"scale": "brightest"}, "scale must be one of"),
])
def test_bad_arguments_are_refused_before_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        combine(frames(stack_with_outliers(3)), **kwargs)


def test_shape_mismatch_names_the_frames():
    with pytest.raises(ValueError, match="shapes differ"):
        combine([Frame(np.ones((3, 3))), Frame(np.ones((4, 3)))])


def test_rejection_map_marks_rejected_values():
    stack = np.array([[[100.0]], [[101.0]], [[99.0]], [[5000.0]]], np.float32)
    result = combine(frames(stack), method="mean", reject="sigclip", rejection_map=True)
    assert result.rejected[:, 0, 0].tolist() == [0, 0, 0, 1]


def test_does_not_change_input_frames():
    stack = stack_with_outliers(5)
    inputs = frames(stack)
    combine(inputs, method="mean", reject="sigclip", scale="median")
    for frame, plane in zip(inputs, stack, strict=True):
        np.testing.assert_array_equal(frame.data, plane)


@pytest.mark.parametrize("n", [3, 7, 15])
def test_pooled_spread_keeps_good_values_and_rejects_outliers(n):
    # Per-pixel MAD from a few values is noisy and rejects ~7-11% of good values; the pooled
    # spread should reject about the Gaussian 3-sigma fraction (0.27%) and cost little noise.
    rng = np.random.default_rng(n)
    stack = rng.normal(0.0, 1.0, (n, 150, 200)).astype(np.float32)
    plain = combine(frames(stack), method="mean", reject="none")
    clipped = combine(frames(stack), method="mean", reject="sigclip")
    rejected = 1 - clipped.count.mean() / n
    assert rejected < 0.01, rejected
    assert np.std(clipped.frame.data) < 1.04 * np.std(plain.frame.data)
    # A trail along a whole row of one frame and scattered hits are all rejected.
    stack[0, 40, :] += 30.0
    stack[1, ::7, ::7] += 50.0
    result = combine(frames(stack), method="mean", reject="sigclip")
    assert np.all(result.count[40] < n)
    assert np.all(result.count[::7, ::7] < n)


@pytest.mark.parametrize("n", [10, 20, 40])
def test_pooled_clip_keeps_good_values_of_pixels_noisier_than_their_row(n):
    # Hot pixels of a dark scatter several times more than their row (dark-current shot noise,
    # telegraph noise): their good values must not be clipped against the row's noise, nor
    # against a small-sample spread that shrinks pass after pass (the MAD did: 2% of values
    # and +-19 ADU at sigma 30). Oracle: a 3-sigma clip that knew each pixel's sigma.
    rng = np.random.default_rng(n)
    rows, cols = 64, 256
    stack = rng.normal(1000.0, 10.0, (n, rows, cols)).astype(np.float32)
    noisy = np.zeros((rows, cols), bool)
    noisy[:, ::8] = True
    stack[:, noisy] = rng.normal(17175.0, 30.0, (n, noisy.sum())).astype(np.float32)
    result = combine(frames(stack), method="mean", reject="sigclip", rejection_map=True)
    rejected = result.rejected.astype(bool)[:, noisy]
    values = stack[:, noisy]
    oracle = np.abs(values - np.median(values, axis=0)) > 3 * 30.0
    assert rejected.mean() < 0.01, rejected.mean()
    assert rejected.mean() < 3 * max(oracle.mean(), 0.0027)
    assert rejected.sum(axis=0).max() <= 3
    error = result.frame.data[noisy] - values.mean(axis=0)
    assert np.abs(error).max() < 3.5 * 30.0 / np.sqrt(n)
    # The spread still follows the pixel: a value 8 sigma out at a noisy pixel goes.
    stack[3, 10, 8] = 17175.0 + 8 * 30.0
    result = combine(frames(stack), method="mean", reject="sigclip", rejection_map=True)
    assert result.rejected[3, 10, 8] == 1


def test_mad_bias_table_is_the_monte_carlo_it_says():
    from ccdred.kernels.order import MAD_TO_SIGMA
    from ccdred.kernels.reject import MEDIAN_MAD_VARIANCE, median_mad_variance

    rng = np.random.default_rng(12345)
    expected = np.ones(65)
    for k in range(2, 65):
        draws = rng.standard_normal((20_000, k))
        med = np.median(draws, axis=1, keepdims=True)
        mad = MAD_TO_SIGMA * np.median(np.abs(draws - med), axis=1)
        expected[k] = np.median(mad**2)
    np.testing.assert_allclose(MEDIAN_MAD_VARIANCE, expected, rtol=1e-12)
    np.testing.assert_array_equal(median_mad_variance(5), expected[:6])
    assert median_mad_variance(100)[65:].tolist() == [1.0] * 36


def test_biweight_scale_is_astropys():
    from astropy.stats import biweight_scale

    from ccdred.kernels.order import _biweight_scale

    rng = np.random.default_rng(11)
    for n in (2, 3, 5, 20, 57):
        for _ in range(20):
            values = np.sort(rng.standard_t(3, n))
            median = float(np.median(values))
            expected = biweight_scale(values, c=9.0, M=median)
            assert _biweight_scale(values, 0, n, median) == pytest.approx(expected, rel=1e-12)
    assert _biweight_scale(np.ones(5), 0, 5, 1.0) == 0.0


@pytest.mark.parametrize("n", [*range(1, 19), 33, 100, 256])
def test_sorting_network_sorts_every_input(n):
    """Every 0-1 input (the 0-1 principle: then every input) for n <= 18; ties and random
    values for larger n."""
    from ccdred.kernels.combine import sorting_network

    pairs = sorting_network(n)
    if n <= 18:
        cases = np.arange(2 ** n, dtype=np.int64)
        columns = np.array([(cases >> k) & 1 for k in range(n)], dtype=np.int8)
    else:
        columns = np.random.default_rng(n).integers(0, 4, (n, 5000)).astype(np.int8)
    values = columns.copy()
    for a, b in pairs:
        values[a], values[b] = np.minimum(values[a], values[b]), np.maximum(values[a], values[b])
    np.testing.assert_array_equal(values, np.sort(columns, axis=0))


@pytest.mark.parametrize("n_cols", [1, 31, 32, 95, 96, 300, 2048])
def test_pooled_noise_is_the_median_of_each_segment(n_cols):
    from ccdred.kernels.combine import POOL_WIDTH, _pooled_noise

    rng = np.random.default_rng(n_cols)
    spreads = rng.integers(1, 6, n_cols).astype(np.float64)  # ties
    counts = rng.integers(0, 5, n_cols)  # fewer than 2 values: no estimate
    counts[: min(n_cols, 40)][::3] = 1  # and a segment with few estimates
    norm = np.linspace(0.5, 1.0, 5)
    out = np.empty(n_cols)
    _pooled_noise(spreads, counts, norm, out)
    per_pixel = np.where(counts >= 2, spreads ** 2 / norm[counts], np.nan)
    segments = max(1, n_cols // POOL_WIDTH)
    edges = [k * POOL_WIDTH for k in range(segments)] + [n_cols]
    for first, last in zip(edges, edges[1:], strict=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # segments with no estimate
            level = np.nanmedian(per_pixel[first:last])
        expected = 0.0 if np.isnan(level) else np.sqrt(level)
        np.testing.assert_array_equal(out[first:last], expected)


def test_mad_by_bisection_equals_numpy_on_every_window():
    from ccdred.kernels.combine import _mad

    rng = np.random.default_rng(4)
    for trial in range(3000):
        n = int(rng.integers(1, 40))
        raw = rng.integers(0, 8, n) if trial % 2 else rng.normal(size=n)  # ties, or none
        values = np.sort(raw.astype(np.float64))
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo + 1, n + 1))
        window = values[lo:hi]
        median = np.median(window)
        assert _mad(values, lo, hi, median) == np.median(np.abs(window - median))


def test_files_are_hashed_as_they_are_read(tmp_path):
    import hashlib
    import os

    from ccdred.io import digests, sha256

    rng = np.random.default_rng(8)
    paths = write_stack(tmp_path, rng.normal(1000, 20, (4, 40, 30)))
    digests._KNOWN.clear()
    combine(paths, method="median", reject="none", scale="median", memory_limit=100_000)
    for path in paths:
        truth = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digests._KNOWN[os.path.abspath(path)][1] == truth  # no second reading
        assert sha256(path) == truth
    # A file changed since is hashed afresh.
    with open(paths[0], "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        handle.write(b"\x01")
    assert sha256(paths[0]) == hashlib.sha256(paths[0].read_bytes()).hexdigest()
