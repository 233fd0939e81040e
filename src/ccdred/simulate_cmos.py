"""A seeded synthetic CMOS camera, mono or one-shot colour, writing a night as capture programs do.

A modern CMOS camera differs from the CCD of `ccdred.simulate` where a reduction notices: the ADC
has 12 to 16 bits and the driver shifts its codes left to fill 16, so file values are multiples
of ``2**(16 - adc_bits)`` and the e-/ADU in file units is not the one at the ADC's depth; the
pedestal comes from an *offset setting*, not from an overscan; nights rarely hold bias frames
(dark-flats instead); amplifier glow adds charge that does not scale with exposure time; a
colour sensor carries a Bayer mosaic whose planes respond differently. Each capture program
writes its own keywords, frame types, folders and file names (`ccdred.simulate_files`).

Conventions: images are [row, column] as written (``ROWORDER='TOP-DOWN'``); the Bayer pattern
names the colours of pixels [0,0], [0,1], [1,0], [1,1]; "ADU" means file units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from . import simulate as _ccd
from .io import write_raw
from .simulate_files import (
    PROGRAMS,
    ProgramConventions,
    camera_values,
    cmos_header,
    frame_path,
    write_truth,
)

__all__ = ["CmosModel", "CmosTruth", "SimulatedCmosNight", "simulate_cmos_night", "PROGRAMS"]

_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass(frozen=True)
class CmosModel:
    """Parameters of the synthetic CMOS camera and night (electrons unless stated).

    Raises `ValueError` on construction, naming the parameter, when one is impossible.
    """

    size: int = 512
    """Pixels on a side (square frame); even, at least 64."""
    colour: bool = False
    """One-shot colour: a Bayer mosaic ``bayer`` with responses ``colour_qe``."""
    bayer: str = "RGGB"
    """Colours of pixels [0,0], [0,1], [1,0], [1,1] as written (colour only)."""
    colour_qe: tuple[float, float, float] = (0.55, 1.0, 0.7)
    """Relative response of the R, G and B pixels (colour only)."""
    gain_setting: int = 100
    """The camera's gain setting (header ``GAIN``; not e-/ADU)."""
    egain_native: float = 1.0
    """True e-/ADU at the ADC's native bit depth."""
    adc_bits: int = 14
    """ADC depth: 12, 14 or 16; codes are written times ``2**(16 - adc_bits)``."""
    offset_setting: int = 50
    """The camera's offset setting (header ``OFFSET``)."""
    pedestal_codes: float = 100.0
    """Pedestal the offset gives, in ADC codes (``pedestal_adu`` in file units)."""
    read_noise: float = 1.8
    dark_current: float = 0.002
    """Electrons per second per normal pixel."""
    hot_fraction: float = 0.0005
    """Fraction of hot pixels, with rates log-uniform in 0.5-50 e-/s."""
    glow: float = 0.5
    """Amplifier glow, e-/s at the corner pixel [0, size - 1], falling as exp(-d / (size/6))."""
    glow_per_frame: float = 20.0
    """Glow per frame whatever the exposure (e- at the same corner, the same shape)."""
    cold_fraction: float = 0.0005
    """Fraction of dead or weak pixels in the flat field."""
    full_well: float = 50_000.0
    n_dark: int = 8
    """Darks at each distinct exposure of ``light_exptimes``."""
    n_flat: int = 10
    """Flats per filter, at ``flat_exptime``."""
    flat_exptime: float = 2.0
    flat_level: float = 20_000.0
    """ADU above the pedestal, on average, in a flat."""
    n_darkflat: int = 10
    """Dark-flats at ``flat_exptime``."""
    n_bias: int = 0
    light_exptimes: tuple[float, ...] = (120.0,) * 4
    """One light per entry (s), split in blocks over the filters."""
    filters: tuple[str, ...] | None = None
    """Filter names; None: ``("L",)`` for mono, ``("UV/IR",)`` for colour."""
    sky_rate: float = 3.0
    """Sky, e-/s per pixel before the flat field and the colour response."""
    n_stars: int = 150
    fwhm: float = 3.0
    """Gaussian stellar profile, pixels."""
    cosmic_rate: float = 0.5
    """Cosmic-ray hits per second per megapixel."""
    set_temp: float = -10.0
    """Cooler set point (degC); the measured temperature is within 0.1 of it."""
    program: str = "nina"
    """Capture program whose conventions the files follow: one of `PROGRAMS`."""
    camera: str | None = None
    """Camera model name; None: a ZWO ASI2600MM Pro or, for colour, MC Pro."""
    pixel_size: float = 3.76
    """Microns."""
    target: str = "M81"

    def __post_init__(self) -> None:
        counts = {"n_dark": self.n_dark, "n_flat": self.n_flat, "n_darkflat": self.n_darkflat,
                  "n_bias": self.n_bias, "n_stars": self.n_stars}
        checks = [
            ("size", self.size, self.size >= 64 and self.size % 2 == 0, "an even number >= 64"),
            ("adc_bits", self.adc_bits, self.adc_bits in (12, 14, 16), "12, 14 or 16"),
            ("program", self.program, self.program in PROGRAMS,
             f"one of {', '.join(PROGRAMS)}"),
            ("bayer", self.bayer, self.bayer in _PATTERNS, f"one of {', '.join(_PATTERNS)}"),
            ("colour_qe", self.colour_qe, len(self.colour_qe) == 3 and min(self.colour_qe) > 0,
             "three positive responses (R, G, B)"),
            ("egain_native", self.egain_native, self.egain_native > 0, "positive"),
            ("pedestal_codes", self.pedestal_codes,
             0 <= self.pedestal_codes < self.saturation_code,
             f"within the ADC's range 0-{self.saturation_code}"),
            ("light_exptimes", self.light_exptimes,
             len(self.light_exptimes) > 0 and min(self.light_exptimes) > 0,
             "at least one positive exposure"),
            ("flat_exptime", self.flat_exptime, self.flat_exptime > 0, "positive"),
            ("filters", self.filters, len(self.filter_names) > 0, "at least one filter name"),
            ("fwhm", self.fwhm, self.fwhm > 0, "positive"),
            *((name, value, value >= 0, "zero or more") for name, value in counts.items()),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"CmosModel.{name} must be {expected}, got {value!r}")

    @property
    def adu_per_code(self) -> int:
        """File units per ADC code, ``2**(16 - adc_bits)``."""
        return 2 ** (16 - self.adc_bits)

    @property
    def saturation_code(self) -> int:
        """Largest ADC code (full scale); a pixel there is saturated."""
        return 2**self.adc_bits - 1

    @property
    def gain_file(self) -> float:
        """True e-/ADU in file units: ``egain_native / 2**(16 - adc_bits)``."""
        return self.egain_native / self.adu_per_code

    @property
    def pedestal_adu(self) -> float:
        """Pedestal in file units."""
        return self.pedestal_codes * self.adu_per_code

    @property
    def filter_names(self) -> tuple[str, ...]:
        """The filters, with the default applied."""
        if self.filters is not None:
            return tuple(self.filters)
        return ("UV/IR",) if self.colour else ("L",)

    @property
    def camera_name(self) -> str:
        """The camera model, with the default applied."""
        return self.camera or f"ZWO ASI2600{'MC' if self.colour else 'MM'} Pro"


@dataclass(frozen=True)
class CmosTruth:
    """What the raw frames were made from (images are [row, column] as written)."""

    pedestal_adu: float
    """Pedestal of every frame, ADU (file units)."""
    gain_file: float
    """True e-/ADU in file units."""
    read_noise_adu: float
    """Read noise in ADU (file units)."""
    dark_current: np.ndarray
    """e-/s, hot pixels included (glow not included)."""
    hot: np.ndarray
    """True where the dark current is a hot pixel's."""
    glow: np.ndarray
    """Amplifier glow, e-/s."""
    glow_per_frame: np.ndarray
    """Glow added to every frame whatever its exposure, e-."""
    flat: np.ndarray
    """Response including the colour response, mean 1 over the sensor's good pixels."""
    flat_per_plane: np.ndarray
    """``flat`` normalised to mean 1 over each colour plane's good pixels (mono: ``flat``)."""
    colour_response: np.ndarray
    """``flat / flat_per_plane``: each pixel's colour-plane level (mono: ones)."""
    dead: np.ndarray
    """True where the response is dead or weak (cold pixel)."""
    science: dict[str, np.ndarray] = field(default_factory=dict)
    """Per light file name, the noiseless expected reduced image in ADU (file units):
    ``(light - matched master dark) / master flat normalised per colour plane``, that is
    ``colour_response * (sky + stars) * exptime / gain_file``; no cosmics, no saturation, and
    the sky also at dead pixels (which no reduction recovers)."""
    cosmics: dict[str, np.ndarray] = field(default_factory=dict)
    """Per light file name, True where a cosmic ray hit."""
    saturated: dict[str, np.ndarray] = field(default_factory=dict)
    """Per light file name, True where the pixel saturated: its charge reached the full well or
    its ADC code full scale (``2**adc_bits - 1``)."""


@dataclass(frozen=True)
class SimulatedCmosNight:
    """Where a simulated CMOS night was written, and its truth."""

    raw_dir: Path
    truth_dir: Path
    files: dict[str, list[Path]]
    """Paths per kind: 'light', 'dark', 'flat', 'darkflat', 'bias' (every key present)."""
    truth: CmosTruth
    model: CmosModel


def _planes(model: CmosModel) -> np.ndarray:
    """Return each pixel's colour under the Bayer mosaic: 0 red, 1 green, 2 blue."""
    n = model.size
    cell = np.array(["RGB".index(c) for c in model.bayer], dtype=np.intp).reshape(2, 2)
    return np.tile(cell, (n // 2, n // 2))


def _dark_current(model: CmosModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = model.size
    rate = np.full((n, n), model.dark_current)
    hot = rng.random((n, n)) < model.hot_fraction
    rate[hot] += np.exp(rng.uniform(np.log(0.5), np.log(50.0), hot.sum()))
    return rate, hot


def _glow(model: CmosModel) -> tuple[np.ndarray, np.ndarray]:
    n = model.size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    shape = np.exp(-np.hypot(yy, xx - (n - 1)) / (n / 6.0))
    return model.glow * shape, model.glow_per_frame * shape


def _flats(model: CmosModel, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return flat, flat per plane, colour response and dead pixels (see `CmosTruth`)."""
    sensor, dead = _ccd._flat(model, rng)  # vignetting, dust, 1 % pixel-to-pixel, cold pixels
    if not model.colour:
        return sensor, sensor, np.ones_like(sensor), dead
    good = ~dead
    planes = _planes(model)
    flat = sensor * np.asarray(model.colour_qe)[planes]
    flat /= flat[good].mean()
    levels = np.array([flat[(planes == p) & good].mean() for p in range(3)])
    colour_response = levels[planes]
    return flat, flat / colour_response, colour_response, dead


def _stars(model: CmosModel, rng: np.random.Generator) -> np.ndarray:
    """Star fluxes per second (e-/s before the flat field), the same field in every light."""
    n = model.size
    image = np.zeros((n, n))
    sigma = model.fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    half = int(np.ceil(5.0 * sigma)) + 1
    fluxes = np.minimum(50.0 * (1.0 - rng.random(model.n_stars)) ** (-1.5), 2e5)
    for flux in fluxes:
        cx, cy = rng.uniform(10, n - 10, 2)
        x0, x1 = max(0, int(cx) - half), min(n, int(cx) + half + 1)
        y0, y1 = max(0, int(cy) - half), min(n, int(cy) + half + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += flux / (2 * np.pi * sigma**2) * np.exp(
            -0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / sigma**2)
    return image


def _readout(model: CmosModel, electrons: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """Return the 16-bit file data and where the pixel saturated (full well or full scale)."""
    drawn = rng.poisson(np.maximum(electrons, 0)).astype(np.float64)
    collected = np.minimum(drawn, model.full_well) + rng.normal(0.0, model.read_noise,
                                                                electrons.shape)
    codes = np.clip(np.round(collected / model.egain_native + model.pedestal_codes),
                    0, model.saturation_code)
    saturated = (codes >= model.saturation_code) | (drawn >= model.full_well)
    return (codes * model.adu_per_code).astype(np.uint16), saturated


def simulate_cmos_night(out_dir: str | Path, *, model: CmosModel = CmosModel(), seed: int = 0
                        ) -> SimulatedCmosNight:
    """Write a raw CMOS night to ``out_dir/raw`` and its truth to ``out_dir/truth``.

    Raw frames hold, in electrons, ``flat * (sky + stars) * t + dark_current * t + glow * t
    + glow_per_frame + cosmics``, drawn Poisson (clipped at the full well) plus read noise, then
    ``round(e / egain_native + pedestal_codes)`` clipped to the ADC's range and written times
    ``2**(16 - adc_bits)`` as 16-bit integers. Flats have no stars and a level of about
    ``flat_level`` ADU; darks and dark-flats no light.

    Parameters
    ----------
    out_dir : path
        Created if missing; ``raw/`` and ``truth/`` must not already hold files.
    model : CmosModel
        The camera, the night and the capture program.
    seed : int
        Seed of `numpy.random.default_rng`: the same seed writes the same night.
    """
    out = Path(out_dir)
    raw, truth_dir = out / "raw", out / "truth"
    for folder in (raw, truth_dir):
        if folder.exists() and any(folder.iterdir()):
            raise ValueError(f"{folder}: already holds files; choose an empty output directory")
    rng = np.random.default_rng(seed)
    dark_rate, hot = _dark_current(model, rng)
    glow, glow_per_frame = _glow(model)
    flat, per_plane, colour_response, dead = _flats(model, rng)
    stars = _stars(model, rng)
    truth = CmosTruth(pedestal_adu=model.pedestal_adu, gain_file=model.gain_file,
                      read_noise_adu=model.read_noise / model.gain_file, dark_current=dark_rate,
                      hot=hot, glow=glow, glow_per_frame=glow_per_frame, flat=flat,
                      flat_per_plane=per_plane, colour_response=colour_response, dead=dead)
    night = _Writer(raw, model, PROGRAMS[model.program], rng, truth)
    night.darks(datetime(2024, 2, 28, 12, 0, 0))
    night.lights(datetime(2024, 3, 1, 22, 10, 5), stars)
    night.flats(datetime(2024, 3, 2, 5, 40, 0))
    write_truth(truth, truth_dir, model)
    return SimulatedCmosNight(raw_dir=raw, truth_dir=truth_dir, files=night.files, truth=truth,
                              model=model)


@dataclass
class _Writer:
    """Writes a night's raw frames, drawing from one random generator in a fixed order."""

    raw: Path
    model: CmosModel
    program: ProgramConventions
    rng: np.random.Generator
    truth: CmosTruth
    files: dict[str, list[Path]] = field(default_factory=lambda: {
        "light": [], "dark": [], "flat": [], "darkflat": [], "bias": []})

    def dark_signal(self, exptime: float) -> np.ndarray:
        truth = self.truth
        return (truth.dark_current + truth.glow) * exptime + truth.glow_per_frame

    def frame(self, kind: str, when: datetime, exptime: float, electrons: np.ndarray,
              filt: str | None = None, obj: str | None = None) -> Path:
        """Draw (temperature, cosmics, readout) and write one frame; return its path."""
        model = self.model
        temp = round(model.set_temp + self.rng.uniform(-0.1, 0.1), 2)
        charge, hits = _ccd._cosmics(model, exptime, self.rng)
        data, saturated = _readout(model, electrons + charge, self.rng)
        values = {**camera_values(model), "type": self.program.types.get(kind),
                  "exptime": float(exptime), "ccd_temp": temp, "filter": filt, "object": obj,
                  "date_obs": when.isoformat(timespec="milliseconds"),
                  "date_obs_s": when.isoformat(timespec="seconds"),
                  "date_obs_7": when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"}
        relative = frame_path(self.program, kind, when=when, index=len(self.files[kind]) + 1,
                              exptime=exptime, temp=temp, gain=model.gain_setting, filt=filt,
                              obj=obj)
        path = write_raw(data, cmos_header(self.program, values), self.raw / relative)
        self.files[kind].append(path)
        if kind == "light":
            self.truth.cosmics[path.name] = hits
            self.truth.saturated[path.name] = saturated
        return path

    def darks(self, clock: datetime) -> None:
        for exptime in dict.fromkeys(self.model.light_exptimes):
            for _ in range(self.model.n_dark):
                self.frame("dark", clock, exptime, self.dark_signal(exptime))
                clock += timedelta(seconds=exptime + 2)

    def lights(self, clock: datetime, stars: np.ndarray) -> None:
        model, truth = self.model, self.truth
        filters, count = model.filter_names, len(model.light_exptimes)
        for i, exptime in enumerate(model.light_exptimes):
            filt = filters[i * len(filters) // count]
            sky = (model.sky_rate + stars) * exptime
            path = self.frame("light", clock, exptime,
                              truth.flat * sky + self.dark_signal(exptime), filt, model.target)
            truth.science[path.name] = truth.colour_response * sky / model.gain_file
            clock += timedelta(seconds=exptime + 7)

    def flats(self, clock: datetime) -> None:
        """Write the flats of every filter, then the dark-flats and the biases."""
        model, exptime = self.model, self.model.flat_exptime
        for filt in model.filter_names:
            for _ in range(model.n_flat):
                level = model.flat_level * self.rng.uniform(0.97, 1.03) * model.gain_file
                self.frame("flat", clock, exptime,
                           self.truth.flat * level + self.dark_signal(exptime), filt)
                clock += timedelta(seconds=exptime + 3)
        for _ in range(model.n_darkflat):
            self.frame("darkflat", clock, exptime, self.dark_signal(exptime))
            clock += timedelta(seconds=exptime + 3)
        for _ in range(model.n_bias):
            self.frame("bias", clock, 0.0, self.dark_signal(0.0))
            clock += timedelta(seconds=1)
