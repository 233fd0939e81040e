"""Each capture program's keywords, read for what that program means by them.

The headers are the camera cards of real files as each program writes them (N.I.N.A. 1.10,
SharpCap 4.1, ASIAIR, INDI/Ekos, APT 3.5, Sequence Generator Pro 3.1, MaxIm DL 6, CCDSoft 5).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from ccdred.instruments.camera import cfa_pattern, read_camera, shift_pattern
from ccdred.inventory import classify

HEADERS = {
    "nina": {"SWCREATE": "N.I.N.A. 1.10.2.90", "IMAGETYP": "LIGHT", "GAIN": 120,
             "OFFSET": 30, "EGAIN": 1.00224268436432, "INSTRUME": "ZWO ASI294MC Pro",
             "SET-TEMP": -10.0, "CCD-TEMP": -10.0, "BAYERPAT": "RGGB", "XBAYROFF": 0,
             "YBAYROFF": 0, "ROWORDER": "TOP-DOWN", "READOUTM": "Normal"},
    "sharpcap": {"SWCREATE": "SharpCap v4.1.12946.0, 64 bit", "GAIN": 300, "OFFSET": 8,
                 "BLKLEVEL": 8, "EGAIN": 0.1226, "ADCBITS": 12, "EGAINSAV": 0.00766,
                 "RDNOISE": 1.7, "ROWORDER": "TOP-DOWN", "INSTRUME": "ZWO ASI183MC Pro",
                 "SET-TEMP": 0, "CCD-TEMP": -0.5, "BAYERPAT": "RGGB"},
    "asiair": {"CREATOR": "ZWO ASIAIR Plus", "INSTRUME": "ZWO ASI2600MC Duo",
               "IMAGETYP": "Light", "GAIN": 100, "OFFSET": 50, "CCD-TEMP": -9.8,
               "BAYERPAT": "RGGB"},
    "ekos": {"INSTRUME": "ZWO CCD ASI224MC", "FRAME": "Light", "GAIN": 180.0,
             "BAYERPAT": "RGGB", "XBAYROFF": 0, "YBAYROFF": 0},
    "apt": {"SWCREATE": "Astro Photography Tool - APT v.3.54.1", "IMAGETYP": "Light Frame",
            "INSTRUME": "ZWO ASI294MC Pro", "EGAIN": 1.00224268436432, "GAIN": 120,
            "SET-TEMP": -15.0},
    "sgp": {"CREATOR": "Sequence Generator Pro v3.1.0.479", "IMAGETYP": "LIGHT",
            "INSTRUME": "ZWO ASI294MC Pro", "GAIN": 120, "EGAIN": 3.99000000953674,
            "OFFSET": 30, "SET-TEMP": -18, "CCD-TEMP": -17.5},
    "maxim": {"SWCREATE": "MaxIm DL Version 6.50 250810 1AJSF", "IMAGETYP": "LIGHT",
              "INSTRUME": "dcam-spare", "READOUTM": "Monochrome", "SET-TEMP": -25.0,
              "CCD-TEMP": -25.06},
    "ccdsoft": {"SWCREATE": "CCDSoft Version 5.00.218", "IMAGETYP": "Dark Frame",
                "INSTRUME": "SBIG STL-1001 3 CCD Camera", "EGAIN": 2.06, "SET-TEMP": 0.0},
    "observatory": {"INSTRUME": "CAFOS", "GAIN": 1.43, "IMAGETYP": "science"},
}


def _read(name):
    return read_camera(fits.Header(HEADERS[name]), (976, 1304))


@pytest.mark.parametrize("name,program,setting,electrons,depth", [
    ("nina", "N.I.N.A.", 120, 1.00224268436432, "adc"),
    ("sharpcap", "SharpCap", 300, 0.00766, "saved"),   # EGAINSAV: per saved ADU
    ("asiair", "ZWO ASIAIR", 100, None, "saved"),
    ("ekos", "KStars/Ekos (INDI)", 180, None, "saved"),
    ("apt", "APT", 120, 1.00224268436432, "adc"),
    ("sgp", "Sequence Generator Pro", 120, 3.99000000953674, "adc"),
    ("maxim", "MaxIm DL", None, None, "saved"),
    ("ccdsoft", "CCDSoft/TheSkyX", None, 2.06, "saved"),
    ("observatory", None, None, 1.43, "saved"),
])
def test_gain_keywords_mean_what_their_program_means(name, program, setting, electrons, depth):
    camera = _read(name)
    assert camera.program == program
    assert camera.gain_setting == setting
    assert camera.electrons_per_adu == electrons
    assert camera.depth == depth


def test_a_gain_setting_is_never_taken_for_electrons_per_adu():
    for name in ("nina", "sharpcap", "asiair", "ekos", "apt", "sgp"):
        camera = _read(name)
        assert camera.electrons_per_adu != HEADERS[name]["GAIN"], name
    note = _read("ekos").gain_note
    assert note == "GAIN=180 is KStars/Ekos (INDI)'s gain setting, not e-/ADU"
    # An unknown program with a CMOS camera: GAIN is the camera's setting too.
    unknown = read_camera(fits.Header({"INSTRUME": "QHY268M", "GAIN": 56}))
    assert unknown.gain_setting == 56 and unknown.electrons_per_adu is None
    # An unknown program and camera whose GAIN cannot be e-/ADU.
    odd = read_camera(fits.Header({"INSTRUME": "SomeCam", "GAIN": 180}))
    assert odd.electrons_per_adu is None and "not a plausible e-/ADU" in odd.gain_note


def test_camera_settings_are_read():
    nina, sharpcap = _read("nina"), _read("sharpcap")
    assert (nina.offset, nina.readout_mode, nina.set_temperature) == (30, "Normal", -10.0)
    assert (sharpcap.offset, sharpcap.adc_bits, sharpcap.read_noise) == (8, 12, 1.7)
    assert _read("maxim").readout_mode == "Monochrome"


@pytest.mark.parametrize("cards,rows,expected", [
    ({"BAYERPAT": "RGGB"}, 976, "RGGB"),                                  # INDI: no ROWORDER
    ({"BAYERPAT": "RGGB", "ROWORDER": "TOP-DOWN"}, 976, "RGGB"),          # N.I.N.A., SharpCap
    ({"BAYERPAT": "RGGB", "ROWORDER": "BOTTOM-UP"}, 976, "GBRG"),         # even height flips
    ({"BAYERPAT": "RGGB", "ROWORDER": "BOTTOM-UP"}, 975, "RGGB"),         # odd height does not
    ({"BAYERPAT": "RGGB", "XBAYROFF": 1}, 976, "GRBG"),
    ({"BAYERPAT": "RGGB", "YBAYROFF": 1}, 976, "GBRG"),
    ({"BAYERPAT": "GBRG", "XBAYROFF": 1, "YBAYROFF": 1}, 976, "GRBG"),
    ({"CFAIMAGE": "RGGB"}, 976, "RGGB"),                                  # Astro Pixel Processor
    ({"COLORTYP": "RGB"}, 976, None),                                     # not a pattern
    ({}, 976, None),
])
def test_the_bayer_pattern_at_the_first_pixel(cards, rows, expected):
    assert cfa_pattern(fits.Header(cards), (rows, 1304)) == expected


def test_shifting_a_pattern_twice_comes_back():
    for pattern in ("RGGB", "BGGR", "GRBG", "GBRG"):
        assert shift_pattern(shift_pattern(pattern, 1, 1), 1, 1) == pattern


@pytest.mark.parametrize("cards,folder,kind", [
    ({"IMAGETYP": "DARKFLAT"}, "", "darkflat"),                  # N.I.N.A.
    ({"IMAGETYP": "Dark"}, "DarkFlat", "darkflat"),              # ASIAIR: a dark in DarkFlat/
    ({"FRAME": "Dark"}, "DarkFlat", "darkflat"),                 # INDI
    ({"IMAGETYP": "Dark Frame"}, "Dark Flats", "darkflat"),      # APT
    ({"FRAME": "Light"}, "", "science"),                         # INDI's FRAME keyword
    ({"IMAGETYP": "Light Frame"}, "", "science"),
    ({}, "DarkFlat", "darkflat"),                                # SharpCap: folder only
    ({"IMAGETYP": "Dark"}, "darks", "dark"),
])
def test_frame_types_as_capture_programs_write_them(tmp_path, cards, folder, kind):
    path = tmp_path / folder / "frame_0001.fits" if folder else tmp_path / "frame_0001.fits"
    assert classify(fits.Header(cards), Path(path), tmp_path)[0] == kind


def test_the_real_indi_colour_lights_are_read_as_such(shared_data):
    from ccdred.inventory import describe_file

    info = describe_file(shared_data / "asi224mc-als-lights" / "Light_1069.fits")
    assert info.kind == "science" and info.kind_source == "FRAME='Light'"
    assert info.program == "KStars/Ekos (INDI)" and info.gain_setting == 180.0
    assert info.gain is None and info.cfa == "RGGB"
