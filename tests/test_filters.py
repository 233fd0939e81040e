"""The compiled box median against scipy, and its network proven on every 0-1 input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ccdred.kernels import filters


def test_median_network_selects_the_median_of_every_zero_one_input():
    """A comparator network selects the k-th value of every input if and only if it does so
    for every input of zeros and ones (the 0-1 principle): 2**25 cases, as bit planes."""
    cases = np.arange(2 ** 25, dtype=np.uint32)
    planes = [np.packbits(((cases >> k) & 1).astype(np.uint8)) for k in range(25)]
    for a, b in filters._MEDIAN_25:
        planes[a], planes[b] = planes[a] & planes[b], planes[a] | planes[b]
    ones = np.zeros(cases.size, np.uint8)
    for k in range(25):
        ones += ((cases >> k) & 1).astype(np.uint8)
    np.testing.assert_array_equal(planes[12], np.packbits(ones >= 13))


@pytest.mark.parametrize("shape", [(5, 5), (7, 9), (64, 33), (300, 257)])
def test_median_filter_equals_scipy(shape):
    rng = np.random.default_rng(shape[0])
    image = rng.normal(1, 0.02, shape).astype(np.float32)
    image[::3, ::5] = 1.0  # ties
    np.testing.assert_array_equal(filters.median_filter(image, 5),
                                  ndimage.median_filter(image, size=5, mode="reflect"))


def test_other_box_sizes_fall_back_to_scipy():
    image = np.random.default_rng(1).normal(size=(40, 40)).astype(np.float32)
    np.testing.assert_array_equal(filters.median_filter(image, 7),
                                  ndimage.median_filter(image, size=7, mode="reflect"))


@pytest.mark.parametrize("radius", [1, 4])
def test_grow_mask_equals_binary_dilation(radius):
    rng = np.random.default_rng(radius)
    mask = rng.random((120, 90)) < 0.002
    mask[0, 0] = mask[-1, 40] = mask[60, -1] = True
    square = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    np.testing.assert_array_equal(filters.grow_mask(mask, radius),
                                  ndimage.binary_dilation(mask, structure=square))
    assert not filters.grow_mask(np.zeros((5, 5), bool), 2).any()
