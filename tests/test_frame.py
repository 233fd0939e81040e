import time

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


def test_repr_is_one_short_line():
    header = fits.Header({"IMAGETYP": "LIGHT", "EXPTIME": 300.0, "FILTER": "R"})
    for i in range(300):
        header[f"KEY{i}"] = "x" * 60
    dq = np.zeros((2048, 2048), np.uint16)
    dq[:3, 0] = Flag.HOT
    dq[5, 5] = Flag.COSMIC_RAY | Flag.REPAIRED
    frame = Frame(np.zeros((2048, 2048), np.float32), variance=np.ones((2048, 2048)), dq=dq,
                  header=header)
    text = repr(frame)
    assert "\n" not in text and len(text) < 200
    assert text.startswith("Frame(2048x2048 float32; variance; flags: HOT 3, COSMIC_RAY 1, "
                           "REPAIRED 1; IMAGETYP='LIGHT' EXPTIME=300.0 FILTER='R'")
    assert repr(Frame(np.zeros((3, 4)))) == "Frame(4x3 float64; no variance; no flags)"


def test_compact_layout_is_small_lossless_for_flags_and_read_by_astropy(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the checksum cards' time
    rng = np.random.default_rng(2)
    sky = rng.normal(1000.0, 30.0, (256, 256)).astype(np.float32)
    dq = np.where(rng.random((256, 256)) < 0.01, np.uint16(Flag.HOT | Flag.REPAIRED), 0)
    frame = Frame(sky, variance=np.full(sky.shape, 900.0), dq=dq.astype(np.uint16),
                  header=fits.Header({"OBJECT": "test", "EXPTIME": 30.0}))
    full = ccdred.write(frame, tmp_path / "full.fits")
    small = ccdred.write(frame, tmp_path / "small.fits", layout="compact")
    assert small.stat().st_size < full.stat().st_size / 2.5
    back = ccdred.read(small)
    assert np.array_equal(back.dq, frame.dq)  # flags: lossless
    # quantised to 1/16 of the noise: error uniform, rms 30/16/sqrt(12) = 0.54 ADU
    error = back.data - frame.data
    assert np.abs(error).max() < 30 / 16 and abs(error.mean()) < 0.05
    assert np.allclose(back.variance, 900.0, rtol=0.02)
    assert back.header["OBJECT"] == "test" and back.header["EXPTIME"] == 30.0
    ccd = CCDData.read(small, hdu="SCI")
    assert ccd.shape == (256, 256) and ccd.mask is None
    assert np.allclose(ccd.uncertainty.array, 30.0, rtol=0.01)
    with fits.open(small) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "UNCERT", "DQ"]
    later = time.time() + 10  # gzip stamps the tiles it takes (the constant UNCERT) with the time
    monkeypatch.setattr(time, "time", lambda: later)
    again = ccdred.write(frame, tmp_path / "again.fits", layout="compact")
    assert again.read_bytes() == small.read_bytes()  # fixed dither seed, no time stamps
    with pytest.raises(ValueError, match="layout"):
        ccdred.write(frame, tmp_path / "x.fits", layout="zip")


def test_with_flags_takes_any_mask_by_truth():
    """A mask of numbers (``frame.dq & flag``) flags where it is not zero, as a bool one does."""
    frame = Frame(np.zeros((2, 3), np.float32))
    mask = np.array([[0, 2, 0], [1, 0, 0]])
    flagged = frame.with_flags(mask, Flag.HOT)
    np.testing.assert_array_equal(flagged.dq, np.where(mask != 0, np.uint16(Flag.HOT), 0))
    np.testing.assert_array_equal(frame.with_flags(mask != 0, Flag.HOT).dq, flagged.dq)
