"""XISF input (PixInsight, N.I.N.A.): read wherever FITS is, reduced to the same result."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred import io
from ccdred.errors import BadInputError
from ccdred.flags import Flag
from ccdred.inventory import scan
from ccdred.pipeline import ReduceOptions
from ccdred.pipeline.sensor import analyse_sensor
from ccdred.simulate_cmos import CmosModel, simulate_cmos_night

from .test_cli import run

xisf = pytest.importorskip("xisf")

_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE",
               "CHECKSUM", "DATASUM", "COMMENT", "HISTORY", ""}

PROPERTIES = {"EXPTIME": ("Instrument:ExposureTime", "Float32"),
              "FILTER": ("Instrument:Filter:Name", "String")}
"""Keywords a test moves from FITS keywords to XISF properties, as PixInsight writes them."""


def _keyword_text(card: fits.Card) -> str:
    """A FITS keyword's value as XISF stores it (the FITS card's value field)."""
    value = card.value
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def write_xisf(path: Path, data: np.ndarray, header: fits.Header, *, codec: str | None = None,
               properties: tuple[str, ...] = ()) -> Path:
    """Write one frame as N.I.N.A. or PixInsight would: FITS keywords plus XISF properties."""
    keywords: dict[str, list[dict[str, str]]] = {}
    props = {}
    for card in header.cards:
        if card.keyword in _STRUCTURAL:
            continue
        if card.keyword in properties:
            identifier, kind = PROPERTIES[card.keyword]
            value = np.float32(card.value) if kind == "Float32" else str(card.value)
            props[identifier] = {"id": identifier, "type": kind, "value": value}
            continue
        keywords.setdefault(card.keyword, []).append(
            {"value": _keyword_text(card), "comment": card.comment})
    xisf.XISF.write(str(path), data[:, :, None],
                    image_metadata={"FITSKeywords": keywords, "XISFProperties": props},
                    codec=codec, shuffle=codec is not None)
    return path


def night_as_xisf(raw_dir: Path, out_dir: Path, *, dtype: type = np.uint16,
                  codec: str | None = None, properties: tuple[str, ...] = (),
                  cards: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """The same raw night (folders, names, headers, pixels) with every frame saved as XISF."""
    for source in sorted(p for p in raw_dir.rglob("*") if io.is_fits_name(p)):
        target = out_dir / source.relative_to(raw_dir).with_suffix(".xisf")
        target.parent.mkdir(parents=True, exist_ok=True)
        with fits.open(source) as hdul:
            data, header = hdul[0].data.astype(dtype), hdul[0].header.copy()
        header.update(cards or {})
        for key in drop:
            header.remove(key, ignore_missing=True)
        write_xisf(target, data, header, codec=codec, properties=properties)
    return out_dir


def rewrite_header(path: Path, change) -> None:
    """Edit an XISF file's XML header in place, the data blocks staying where they are."""
    blob = path.read_bytes()
    length = struct.unpack("<I", blob[8:12])[0]
    xml = change(blob[16:16 + length].rstrip(b"\0"))
    start = blob.index(b'location="attachment:') + len(b'location="attachment:')
    position = int(blob[start:blob.index(b":", start)])
    assert 16 + len(xml) <= position, "the new header must fit before the data"
    path.write_bytes(blob[:8] + struct.pack("<I", len(xml)) + blob[12:16] + xml
                     + b"\0" * (position - 16 - len(xml)) + blob[position:])


def assert_same_products(fits_result, xisf_result):
    fits_frames = sorted(fits_result.reduced, key=lambda p: p.stem)
    xisf_frames = sorted(xisf_result.reduced, key=lambda p: p.stem)
    assert [p.stem for p in fits_frames] == [p.stem for p in xisf_frames]
    assert len(fits_frames) >= 3
    for a_path, b_path in zip(fits_frames, xisf_frames, strict=True):
        a, b = ccdred.read(a_path), ccdred.read(b_path)
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.variance, b.variance)
        np.testing.assert_array_equal(a.dq, b.dq)
        for key in ("EXPTIME", "FILTER", "GAIN", "DARKSCL", "BUNIT", "BAYERPAT"):
            assert a.header.get(key) == b.header.get(key), key
    assert sorted(fits_result.masters) == sorted(xisf_result.masters)


# -- the same night in FITS and XISF --------------------------------------------------------

@pytest.mark.parametrize("dtype, codec, properties", [
    (np.uint16, None, ()),
    (np.float32, "zstd", ("EXPTIME", "FILTER")),
], ids=["uint16", "float32-zstd-properties"])
def test_mono_night_in_xisf_reduces_as_in_fits(sim_night, reduced_night, tmp_path, dtype,
                                               codec, properties):
    cards = {}
    if dtype is np.float32:
        # Floating-point samples do not tell the ADC's full scale (nor do they in FITS): the
        # saturation level the 16-bit night showed is given as a keyword, as cameras write it.
        sensor = analyse_sensor([i for i in scan(sim_night.raw_dir) if i.ok], None)
        cards = {"SATURATE": sensor.saturation}
    raw = night_as_xisf(sim_night.raw_dir, tmp_path / "raw", dtype=dtype, codec=codec,
                        properties=properties, cards=cards)
    assert not list(raw.rglob("*.fits"))
    result = ccdred.reduce_night(raw, tmp_path / "out")
    assert all(p.suffix == ".fits" for p in [*result.reduced, *result.masters.values()])
    assert_same_products(reduced_night, result)


@pytest.fixture(scope="module")
def colour_night(tmp_path_factory):
    """A one-shot-colour (RGGB) N.I.N.A. night, reduced from its FITS files."""
    model = CmosModel(size=128, n_stars=20, light_exptimes=(60.0,) * 3, n_dark=5, n_flat=5,
                      n_darkflat=5, colour=True)
    night = simulate_cmos_night(tmp_path_factory.mktemp("colour"), model=model, seed=5)
    options = ReduceOptions(cosmics=False)
    return night, ccdred.reduce_night(night.raw_dir, night.raw_dir.parent / "out",
                                      options=options), options


def test_colour_night_in_xisf_reduces_as_in_fits(colour_night, tmp_path):
    night, fits_result, options = colour_night
    assert fits.getheader(next(night.raw_dir.rglob("*.fits")))["BAYERPAT"] == "RGGB"
    raw = night_as_xisf(night.raw_dir, tmp_path / "raw", drop=("BAYERPAT",))
    # The Bayer pattern as PixInsight records it: a ColorFilterArray element, no keyword.
    for path in raw.rglob("*.xisf"):
        rewrite_header(path, lambda xml: xml.replace(
            b"</Image>", b'<ColorFilterArray pattern="RGGB" width="2" height="2"/></Image>'))
    some = next(raw.rglob("*.xisf"))
    assert "BAYERPAT" not in {k for k in xisf.XISF(str(some)).get_images_metadata()[0][
        "FITSKeywords"]}
    assert io.read_header(some)["BAYERPAT"] == "RGGB"
    result = ccdred.reduce_night(raw, tmp_path / "out", options=options)
    assert_same_products(fits_result, result)
    assert fits.getheader(result.reduced[0])["BAYERPAT"] == "RGGB"


# -- reading --------------------------------------------------------------------------------

def _header(**cards) -> fits.Header:
    header = fits.Header()
    for key, value in cards.items():
        header[key.replace("_", "-")] = value
    return header


def test_reads_pixels_keywords_and_properties(tmp_path):
    data = (np.arange(30 * 20).reshape(20, 30) * 37 % 65536).astype(np.uint16)
    path = tmp_path / "light.xisf"
    write_xisf(path, data, _header(IMAGETYP="LIGHT", GAIN=100, OBJECT="M 27", SET_TEMP=-10.0,
                                   FLIPPED=False), properties=("EXPTIME",))
    # N.I.N.A. names itself in the file's metadata only: its GAIN is a gain setting.
    rewrite_header(path, lambda xml: xml.replace(b'>Python ', b'>N.I.N.A. 3.1 (')
                   .replace(b"</Image>", (
        b'<Property id="Instrument:ExposureTime" type="Float32" value="30"/>'
        b'<Property id="Instrument:Camera:Gain" type="Float32" value="0.25"/>'
        b'<Property id="Instrument:Filter:Name" type="String">Ha</Property>'
        b'<Property id="Observation:Time:Start" type="TimePoint" '
        b'value="2024-05-01T22:00:00Z"/></Image>')))
    frame = ccdred.read(path)
    np.testing.assert_array_equal(frame.data, data.astype(np.float32))
    assert frame.data.dtype == np.float32
    header = frame.header
    assert header["IMAGETYP"] == "LIGHT" and header["OBJECT"] == "M 27"
    assert header["GAIN"] == 100 and header["SET-TEMP"] == -10.0 and header["FLIPPED"] is False
    assert header["EXPTIME"] == 30.0 and header["FILTER"] == "Ha"
    assert header["EGAIN"] == 0.25 and header["DATE-OBS"] == "2024-05-01T22:00:00"
    info = ccdred.inventory.describe_file(path)
    assert info.ok and info.kind == "science" and info.exptime == 30.0
    assert header["SWCREATE"].startswith("N.I.N.A. 3.1")
    assert info.gain == 0.25 and info.gain_setting == 100 and info.bitpix == 16
    with io.FileRows(path) as rows:
        assert rows.shape == (20, 30)
        np.testing.assert_array_equal(rows.read_rows(5, 9), data[5:9].astype(np.float32))


def test_a_gain_property_repeating_the_gain_setting_is_not_taken_for_electrons(tmp_path):
    # Older N.I.N.A. versions wrote the gain setting into Instrument:Camera:Gain.
    path = write_xisf(tmp_path / "old.xisf", np.zeros((4, 4), np.uint16), _header(GAIN=139))
    rewrite_header(path, lambda xml: xml.replace(b"</Image>", (
        b'<Property id="Instrument:Camera:Gain" type="Float32" value="139"/></Image>')))
    assert "EGAIN" not in io.read_header(path)


@pytest.mark.parametrize("codec", [None, "zlib", "lz4hc", "zstd"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32, np.float64])
def test_sample_formats_and_codecs_read_alike(tmp_path, dtype, codec):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 250, (17, 23)).astype(dtype)
    path = write_xisf(tmp_path / "f.xisf", data, _header(IMAGETYP="BIAS"), codec=codec)
    np.testing.assert_array_equal(ccdred.read(path).data, data.astype(np.float32))
    with io.FileRows(path) as rows:
        np.testing.assert_array_equal(rows.read_rows(3, 11), data[3:11].astype(np.float32))


def test_pixinsight_normalised_floats_come_back_in_adu(tmp_path):
    adu = np.random.default_rng(2).integers(300, 60000, (16, 16)).astype(np.float32)
    path = write_xisf(tmp_path / "norm.xisf", adu / np.float32(65535), _header(IMAGETYP="DARK",
                                                                            EXPTIME=10.0))
    frame = ccdred.read(path)
    # float32 rounding of v/65535*65535: a few parts in 1e7.
    np.testing.assert_allclose(frame.data, adu, rtol=1e-6)
    assert frame.header["XISFSCAL"] == 65535
    with io.FileRows(path) as rows:
        np.testing.assert_allclose(rows.read_rows(0, 16), adu, rtol=1e-6)


def test_non_finite_float_samples_are_flagged(tmp_path):
    data = np.full((6, 6), 1000.0, np.float32)
    data[2, 3], data[4, 1] = np.nan, np.inf
    frame = ccdred.read(write_xisf(tmp_path / "nan.xisf", data, _header(IMAGETYP="FLAT")))
    assert frame.has(Flag.NO_DATA).sum() == 2 and np.isnan(frame.data[4, 1])


# -- what is not supported says so ----------------------------------------------------------

def test_unsupported_files_are_refused_with_the_file_and_the_reason(tmp_path):
    rgb = tmp_path / "rgb.xisf"
    xisf.XISF.write(str(rgb), np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(BadInputError, match=r"rgb\.xisf: holds a 3-channel \(RGB\) image"):
        ccdred.read(rgb)
    two = write_xisf(tmp_path / "two.xisf", np.zeros((8, 8), np.uint16), _header(IMAGETYP="BIAS"))

    def duplicate(xml: bytes) -> bytes:
        image = xml[xml.index(b"<Image"):xml.index(b"</Image>") + len(b"</Image>")]
        return xml.replace(image, image + image.replace(b'id="', b'id="b'))
    rewrite_header(two, duplicate)
    with pytest.raises(BadInputError, match=r"two\.xisf: holds 2 images"):
        io.read_header(two)
    text = tmp_path / "text.xisf"
    text.write_text("not an xisf file")
    with pytest.raises(BadInputError, match="not a monolithic XISF file"):
        ccdred.read(text)
    empty = tmp_path / "empty.xisf"
    empty.touch()
    with pytest.raises(BadInputError, match="empty"):
        io.read_header(empty)
    cut = write_xisf(tmp_path / "cut.xisf", np.ones((64, 64), np.uint16), _header())
    cut.write_bytes(cut.read_bytes()[:-100])
    with pytest.raises(BadInputError, match=r"cut\.xisf: truncated"):
        io.read_header(cut)
    with pytest.raises(BadInputError, match="truncated"):
        io.FileRows(cut)
    infos = {i.path.name: i for i in scan(tmp_path)}
    assert set(infos) == {"rgb.xisf", "two.xisf", "text.xisf", "empty.xisf", "cut.xisf"}
    assert not any(i.ok for i in infos.values())


# -- the commands ----------------------------------------------------------------------------

def test_commands_read_xisf(sim_night, tmp_path):
    raw = night_as_xisf(sim_night.raw_dir / "bias", tmp_path / "bias")
    files = sorted(raw.glob("*.xisf"))
    assert "9 bias" in run("scan", raw).stdout
    assert "BIAS (256x256)" in run("info", files[0]).stdout
    run("combine", *files, "-o", tmp_path / "bias.fits", "--method", "median")
    from_fits = tmp_path / "bias_fits.fits"
    run("combine", *sorted((sim_night.raw_dir / "bias").glob("*.fits")), "-o", from_fits,
        "--method", "median")
    np.testing.assert_array_equal(fits.getdata(tmp_path / "bias.fits"), fits.getdata(from_fits))
    run("show", files[0], "-o", tmp_path / "bias.png")
    assert (tmp_path / "bias.png").stat().st_size > 1000
    cut = tmp_path / "cut" / "bias_cut.xisf"
    cut.parent.mkdir()
    cut.write_bytes(files[0].read_bytes()[:-5000])
    bad = run("reduce", cut.parent, "-o", tmp_path / "out", check=False)
    assert bad.returncode == 2 and "bias_cut.xisf" in bad.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.realdata
@pytest.mark.parametrize("folder", ["asi224mc-als-lights", "sbig-dark-ramp",
                                    "caha-cafos-ngc2420", "arcsat-eagle-halpha"])
def test_real_frames_saved_as_xisf_describe_as_in_fits(shared_data, tmp_path, folder):
    raw = night_as_xisf(shared_data / folder, tmp_path / folder)
    by_name = {i.path.stem: i for i in scan(raw)}
    originals = scan(shared_data / folder)
    assert len(by_name) == len(originals) > 0
    for original in originals:
        copy = by_name[original.path.stem]
        for field in ("kind", "exptime", "filter", "binning", "shape", "temperature", "date",
                      "gain", "gain_setting", "cfa", "read_noise", "bitpix", "error"):
            assert getattr(copy, field) == getattr(original, field), (original.path.name, field)
        np.testing.assert_array_equal(ccdred.read(copy.path).data,
                                      ccdred.read(original.path).data)


@pytest.mark.parametrize("codec", [None, "zlib"])
def test_big_endian_samples(tmp_path, codec):
    data = np.arange(12 * 10, dtype=np.uint16).reshape(10, 12) * 401
    path = tmp_path / "big.xisf"
    if codec is None:
        write_xisf(path, data, _header(IMAGETYP="BIAS"))
        blob = bytearray(path.read_bytes())
        start = len(blob) - data.nbytes
        blob[start:] = data.astype(">u2").tobytes()
        path.write_bytes(bytes(blob))
    else:
        # Compressed big-endian samples: the block compressed from the byte-swapped image.
        swapped = data.byteswap().view(np.uint16)
        write_xisf(path, swapped, _header(IMAGETYP="BIAS"), codec=codec)
    rewrite_header(path, lambda xml: xml.replace(b'sampleFormat="UInt16"',
                                                 b'sampleFormat="UInt16" byteOrder="big"'))
    np.testing.assert_array_equal(ccdred.read(path).data, data.astype(np.float32))
    with io.FileRows(path) as rows:
        np.testing.assert_array_equal(rows.read_rows(2, 7), data[2:7].astype(np.float32))


def test_reader_prints_nothing_on_standard_output(tmp_path, capsys):
    path = write_xisf(tmp_path / "odd.xisf", np.zeros((4, 4), np.uint16), _header(IMAGETYP="BIAS"))
    rewrite_header(path, lambda xml: xml.replace(b"</Image>", (
        b'<Property id="Odd:Table" type="Table" rows="0"/></Image>')))
    assert io.read_header(path)["IMAGETYP"] == "BIAS"
    assert capsys.readouterr().out == ""


def test_without_the_optional_package_an_xisf_file_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "light.xisf"
    path.write_bytes(b"XISF0100" + b"\0" * 64)
    monkeypatch.setitem(__import__("sys").modules, "xisf", None)  # as if not installed
    with pytest.raises(BadInputError, match=r"ccdred\[xisf\]") as err:
        io.read(path)
    assert "light.xisf" in str(err.value)
