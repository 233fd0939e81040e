"""Products are written with the checksums astropy would write, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred.flags import Flag
from ccdred.frame import Frame
from ccdred.kernels.checksum import fits_datasum


def _astropy_datasum(array: np.ndarray) -> int:
    return int(fits.ImageHDU(array)._calculate_datasum())


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2", ">i4", "u1"])
def test_datasum_is_astropys(dtype):
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1e4, (37, 52))
    if dtype.startswith(">f"):
        values[0, :3] = [np.nan, np.inf, -np.inf]
    array = (values if dtype.startswith(">f") else np.abs(values) % 120).astype(dtype)
    assert fits_datasum(array) == _astropy_datasum(array)


def test_datasum_carries_around():
    """All-ones words: the sum overflows 32 bits many times (the end-around carry)."""
    array = np.full((64, 64), 0xFFFFFFFE, np.uint32).view(">f4")
    assert fits_datasum(array) == _astropy_datasum(array)


@pytest.mark.parametrize("array", [np.zeros((3, 3), "<f4"), np.zeros((3, 5), "u1"),
                                   np.zeros((8, 8), ">f4")[:, ::2]])
def test_datasum_refuses_what_is_not_written_as_is(array):
    with pytest.raises(ValueError, match="big-endian|contiguous"):
        fits_datasum(array)


def _frame(dtype=np.float32, shape=(61, 47)) -> Frame:
    rng = np.random.default_rng(4)
    data = rng.normal(1000, 30, shape).astype(dtype)
    data[0, 0] = np.nan
    variance = rng.normal(900, 50, shape).astype(dtype)
    variance[1, 1] = -3.0  # written as an uncertainty of 0
    dq = np.zeros(shape, np.uint16)
    dq[2, :5] = Flag.HOT | Flag.REPAIRED
    return Frame(data, variance=variance, dq=dq, header=fits.Header({"OBJECT": "t"}))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_written_file_is_what_astropy_writes(tmp_path, monkeypatch, dtype):
    """The same bytes as astropy's own checksums of the same images in the machine's order
    (odd sizes: a MASK that is not whole 32-bit words goes astropy's way)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    frame = _frame(dtype)
    path = ccdred.write(frame, tmp_path / "f.fits")
    with fits.open(path, checksum=True) as hdul:  # warns (an error here) on a bad checksum
        expected = fits.HDUList([fits.PrimaryHDU(hdul[0].data.astype("<f4"),
                                                 header=hdul[0].header)]
                                + [fits.ImageHDU(h.data.astype(h.data.dtype.newbyteorder("=")),
                                                 header=h.header) for h in hdul[1:]])
        for hdu in expected:
            hdu.add_checksum(when=hdu.header.comments["CHECKSUM"])
        expected.writeto(tmp_path / "astropy.fits", checksum=False)
        std = hdul["UNCERT"].data
        assert std[1, 1] == 0
        assert std.dtype == np.dtype(">f4")
        np.testing.assert_array_equal(
            std, np.sqrt(np.maximum(frame.variance, 0)).astype(np.float32))
        np.testing.assert_array_equal(hdul[0].data, frame.data.astype(np.float32))
    assert path.read_bytes() == (tmp_path / "astropy.fits").read_bytes()
    assert frame.data.dtype == dtype and frame.variance[1, 1] == -3.0  # input untouched


def test_whole_words_mask_goes_the_fast_way_and_checks(tmp_path):
    frame = _frame(shape=(64, 48))
    path = ccdred.write(frame, tmp_path / "f.fits")
    with fits.open(path, checksum=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK", "DQ"]
        assert all(h.header["DATASUM"] == str(_astropy_datasum(h.data)) for h in hdul[:3])
