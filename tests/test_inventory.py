import os
from dataclasses import replace
from pathlib import Path

import pytest
from astropy.io import fits

from ccdred.inventory import classify, describe_file, header_exptime, scan


@pytest.mark.parametrize("key,value,kind", [
    ("IMAGETYP", "bias", "bias"), ("IMAGETYP", "zero", "bias"), ("IMAGETYP", "Bias Frame", "bias"),
    ("IMAGETYP", "dark", "dark"), ("IMAGETYP", "Dark Frame", "dark"),
    ("IMAGETYP", "flat", "flat"), ("IMAGETYP", "domeflat", "flat"),
    ("IMAGETYP", "skyflat", "flat"), ("IMAGETYP", "Flat Field", "flat"),
    ("IMAGETYP", "light", "science"), ("IMAGETYP", "object", "science"),
    ("IMAGETYP", "science", "science"), ("IMAGETYP", "Light Frame", "science"),
    ("ACQTYPE", "DARK", "dark"), ("OBSTYPE", "  FLAT  ", "flat"),
])
def test_header_spellings(key, value, kind):
    header = fits.Header({key: value})
    assert classify(header, Path("x.fits"))[0] == kind


@pytest.mark.parametrize("name,kind", [
    ("DARK_20151128T140848418_DK_R_0300s000_000000.fits", "dark"),
    ("obj_20151128_FF_R_0003s.fits", "flat"),
    ("17365-1978-VF11_20151125T223627610_SC_R_0300s000_000000.fits", "science"),
    ("Bias_BIN1_20250603_044940.fits", "bias"),
    ("Dark_BIN1_20250603_111319.fits", "dark"),
    ("domeflat_H-Alpha_001 (1).fits", "flat"),
])
def test_file_name_tokens(name, kind):
    assert classify(fits.Header(), Path(name))[0] == kind


def test_folder_names_when_nothing_else_tells(tmp_path):
    for folder, kind in (("darks", "dark"), ("flats", "flat"), ("data", "science")):
        path = tmp_path / folder / "img_0001.fits"
        assert classify(fits.Header(), path, tmp_path)[0] == kind


def test_header_wins_over_name():
    header = fits.Header({"IMAGETYP": "flat"})
    assert classify(header, Path("dark_001.fits"))[0] == "flat"


def test_unknown_is_explained():
    kind, why = classify(fits.Header({"IMAGETYP": "calibration"}), Path("img_001.fits"))
    assert kind is None
    assert "IMAGETYP='calibration' not understood" in why


def test_exptime_synonyms():
    assert header_exptime(fits.Header({"EXPOSURE": 12.5})) == 12.5
    assert header_exptime(fits.Header({"ITIME": "3"})) == 3.0
    assert header_exptime(fits.Header({"EXPTIME": "long"})) is None


def write(path, header):
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data=[[1, 2], [3, 4]], header=header).writeto(path)
    return path


def test_describe_reads_the_keywords_that_matter(tmp_path):
    header = fits.Header({"IMAGETYP": "science", "EXPTIME": 60.0, "INSFLNAM": "JohnsonB",
                          "CCDTEMP": -99.0, "CCDSUM": "2 2", "DATE-OBS": "2021-03-28T23:06:34",
                          "OBJECT": "NGC2420", "CCDSENS": 1.43, "CCDRON": 7.4, "DATAMAX": 0.0})
    info = describe_file(write(tmp_path / "a.fits", header))
    assert info.ok
    assert (info.kind, info.exptime, info.filter) == ("science", 60.0, "JohnsonB")
    assert info.binning == (2, 2)
    assert info.temperature is None  # -99 means no sensor reading
    assert (info.gain, info.read_noise, info.saturation) == (1.43, 7.4, None)
    assert info.shape == (2, 2)


def _counting_reads(monkeypatch) -> list[Path]:
    import ccdred.inventory as inventory

    reads = []
    real_read_header = inventory.read_header
    monkeypatch.setattr(inventory, "read_header",
                        lambda path, **kw: reads.append(path) or real_read_header(path, **kw))
    return reads


def test_an_unchanged_file_is_described_once_a_changed_one_again(tmp_path, monkeypatch):
    """A run plans a night more than once: each header is read once while its file is the same.

    A file rewritten in place with the same size (the one change its size and inode do not
    show) is read again once its time stamp moved. Files count as settled here whatever
    their age (the age rule is tested below).
    """
    import ccdred.inventory as inventory

    monkeypatch.setattr(inventory, "_SETTLED_NS", -10**18)
    reads = _counting_reads(monkeypatch)
    path = write(tmp_path / "a.fits", fits.Header({"IMAGETYP": "dark", "EXPTIME": 30.0}))
    first = describe_file(path, tmp_path)
    assert describe_file(path, tmp_path) == first
    assert [info.kind for info in scan(tmp_path)] == ["dark"]
    assert len(reads) == 1
    raw = path.read_bytes()
    position = raw.index(b"'dark    '")
    with open(path, "r+b") as handle:  # same file, same size, another frame type
        handle.seek(position)
        handle.write(b"'flat    '")
    later = path.stat().st_mtime_ns + 5_000_000_000  # the clock ticked since the last write
    os.utime(path, ns=(later, later))
    assert path.stat().st_size == len(raw)
    assert describe_file(path, tmp_path).kind == "flat"
    assert len(reads) == 2
    # Other conventions than the shipped ones are never served from what was kept.
    describe_file(path, tmp_path, replace(inventory.load_conventions()))
    assert len(reads) == 3


def test_a_file_just_changed_or_unreadable_is_read_every_time(tmp_path, monkeypatch):
    """A file changed within the settling time may change again with the same time stamp
    (a coarse file-system clock); a file that could not be read may be readable next time."""
    import ccdred.inventory as inventory

    reads = _counting_reads(monkeypatch)
    monkeypatch.setattr(inventory, "_SETTLED_NS", 10**18)  # every file changed just now
    path = write(tmp_path / "a.fits", fits.Header({"IMAGETYP": "dark", "EXPTIME": 30.0}))
    describe_file(path, tmp_path)
    describe_file(path, tmp_path)
    assert len(reads) == 2
    monkeypatch.setattr(inventory, "_SETTLED_NS", -10**18)  # every file settled
    broken = tmp_path / "broken.fits"
    broken.write_bytes(path.read_bytes()[:1000])
    assert describe_file(broken, tmp_path).error
    assert describe_file(broken, tmp_path).error
    assert reads.count(broken) == 2


def test_science_without_exposure_is_unusable_and_explained(tmp_path):
    info = describe_file(write(tmp_path / "a.fits", fits.Header({"IMAGETYP": "light"})))
    assert not info.ok
    assert "exposure time" in info.error


def test_scan_finds_every_extension_and_odd_names(tmp_path):
    for name in ("a.fits", "b.FIT", "c.fts", "sub dir/d (1).fits"):
        write(tmp_path / name, fits.Header({"IMAGETYP": "bias"}))
    (tmp_path / "notes.txt").write_text("not fits")
    (tmp_path / "broken.fits").write_text("this is not a FITS file")
    infos = scan(tmp_path)
    names = sorted(i.path.name for i in infos)
    assert names == ["a.fits", "b.FIT", "broken.fits", "c.fts", "d (1).fits"]
    broken = next(i for i in infos if i.path.name == "broken.fits")
    assert not broken.ok and "FITS" in broken.error
