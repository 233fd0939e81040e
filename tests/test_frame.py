import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

import ccdred
from ccdred import Flag, Frame


def make(value, var=None, dq=0, shape=(4, 5)):
    return Frame(np.full(shape, value, np.float32),
                 variance=None if var is None else np.full(shape, var, np.float32),
                 dq=np.full(shape, dq, np.uint16))


def test_subtract_adds_variance_and_ors_flags():
    a, b = make(10.0, 4.0, Flag.HOT), make(3.0, 1.0, Flag.DEAD)
    out = a - b
    assert np.all(out.data == 7.0)
    assert np.allclose(out.variance, 5.0)
    assert np.all(out.dq == Flag.HOT | Flag.DEAD)


def test_scale_multiplies_variance_by_square():
    out = make(2.0, 3.0) * 2.5
    assert np.allclose(out.data, 5.0)
    assert np.allclose(out.variance, 3.0 * 2.5**2)


def test_divide_propagates_relative_errors():
    a, b = make(10.0, 4.0), make(2.0, 0.01)
    out = a / b
    expected = (4.0 / 2.0**2) + (10.0 / 2.0) ** 2 * 0.01 / 2.0**2
    assert np.allclose(out.data, 5.0)
    assert np.allclose(out.variance, expected)


def test_arithmetic_never_changes_inputs():
    a, b = make(10.0, 4.0, Flag.HOT), make(3.0, 1.0, Flag.DEAD)
    copies = [(f.data.copy(), f.variance.copy(), f.dq.copy()) for f in (a, b)]
    _ = (a - b) / b * 3.0
    for frame, (data, var, dq) in zip((a, b), copies, strict=True):
        assert np.array_equal(frame.data, data)
        assert np.array_equal(frame.variance, var)
        assert np.array_equal(frame.dq, dq)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"5x4.*7x3"):
        make(1.0) - make(1.0, shape=(3, 7))


def test_data_becomes_float32_and_float64_is_kept():
    assert Frame(np.ones((2, 2), np.uint16)).data.dtype == np.float32
    assert Frame(np.ones((2, 2), np.float64)).data.dtype == np.float64


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        Frame(np.ones((2, 2, 2)))


def test_write_read_roundtrip_and_ccddata(tmp_path):
    frame = make(5.0, 4.0, Flag.HOT).with_header({"OBJECT": "test"})
    path = ccdred.write(frame, tmp_path / "f.fits")
    back = ccdred.read(path)
    assert np.array_equal(back.data, frame.data)
    assert np.allclose(back.variance, 4.0)
    assert np.all(back.dq == Flag.HOT)
    assert back.header["OBJECT"] == "test"
    ccd = CCDData.read(path)
    assert np.allclose(ccd.uncertainty.array, 2.0)
    assert ccd.mask.all()
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul["DQ"].header["DQ_HOT"] == int(Flag.HOT)
    assert not list(tmp_path.glob(".*part"))


def test_ccddata_adapters_roundtrip():
    frame = make(5.0, 4.0, Flag.DEAD)
    back = Frame.from_ccddata(frame.to_ccddata())
    assert np.allclose(back.data, 5.0)
    assert np.allclose(back.variance, 4.0)
    assert np.all(back.bad)
