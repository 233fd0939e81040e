"""Property-based tests: random and malformed headers never crash the classifier or readers."""

from __future__ import annotations

import tempfile
from pathlib import Path

from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccdred.inventory import KINDS, classify, describe_file

KEYWORDS = ["IMAGETYP", "OBSTYPE", "ACQTYPE", "FRAME", "EXPTIME", "EXPOSURE", "ITIME",
            "DARKTIME", "FILTER", "INSFLNAM", "XBINNING", "YBINNING", "CCDSUM", "CCD-TEMP",
            "CCDTEMP", "DATE-OBS", "GAIN", "EGAIN", "RDNOISE", "SATURATE", "DATAMAX", "OBJECT",
            "INSTRUME", "BZERO", "BSCALE"]

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32), printable,
    st.sampled_from(["bias", "DARK", "Flat Field", "light", "zero", "", "  ", "-99", "nan",
                     "2 2", "1x1", "1e309", "300s"]),
)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                max_size=40).filter(lambda s: "/" not in s and s not in (".", ".."))


@given(st.dictionaries(st.sampled_from(KEYWORDS), values, max_size=10), names)
def test_classify_always_answers(cards, name):
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    kind, why = classify(header, Path(name + ".fits"))
    assert kind in (*KINDS, None)
    assert isinstance(why, str) and why


raw_value = st.one_of(
    printable.map(lambda s: f"'{s.replace(chr(39), '')}'"),  # a proper string
    printable,                                               # anything at all
    st.floats(width=32).map(repr), st.integers().map(str),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYWORDS), raw_value), max_size=12))
def test_describe_file_never_raises_on_malformed_cards(cards):
    """Card images are written byte for byte, so values astropy would never write appear."""
    lines = ["SIMPLE  =                    T", "BITPIX  =                   16",
             "NAXIS   =                    2", "NAXIS1  =                    4",
             "NAXIS2  =                    4"]
    lines += [f"{key:<8}= {value}"[:80] for key, value in cards]
    lines.append("END")
    block = "".join(line.ljust(80) for line in lines)
    block = block.ljust(-(-len(block) // 2880) * 2880).encode("ascii")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame.fits"
        path.write_bytes(block + bytes(2880))
        info = describe_file(path)
    assert info.path == path
    assert info.ok or info.error
    if info.exptime is not None:
        assert info.exptime >= 0
