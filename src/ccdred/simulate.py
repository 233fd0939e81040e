"""A seeded synthetic CCD camera that writes a raw night and the truth behind it.

The camera has a structured bias, read noise and gain, Poisson dark current with hot pixels
from barely detectable to saturating, a flat field with vignetting, dust donuts,
pixel-to-pixel structure and cold pixels from dead to merely weak, cosmic rays, stars and ADC
saturation. The raw night follows the reference notebook's layout (``darks/``, ``flats/``,
``data/``, plus ``bias/``), with an ``ACQTYPE`` keyword and C2PU-like file names; the truth goes
to a separate folder as FITS images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits

from .io import write_raw

__all__ = ["CameraModel", "Truth", "SimulatedNight", "simulate_night"]

ADC_MAX = 65535


@dataclass(frozen=True)
class CameraModel:
    """Parameters of the synthetic camera and night (electrons unless stated)."""

    size: int = 1024
    gain: float = 1.5
    """Electrons per ADU."""
    read_noise: float = 7.0
    bias_level: float = 1000.0
    """ADU."""
    dark_current: float = 0.02
    """Electrons per second per normal pixel."""
    hot_fraction: float = 0.002
    cold_fraction: float = 0.0008
    full_well: float = 150_000.0
    n_bias: int = 9
    n_dark: int = 7
    dark_exptime: float = 300.0
    n_flat: int = 7
    flat_level: float = 25_000.0
    """ADU, roughly, at the centre of a flat."""
    filter: str = "R"
    science_exptimes: tuple[float, ...] = (300.0, 300.0, 120.0)
    sky_rate: float = 15.0
    n_stars: int = 150
    cosmic_rate: float = 0.5
    """Cosmic-ray hits per second per megapixel."""
    temperature: float = -30.0
    noise_keywords: bool = True
    """Write GAIN and RDNOISE in the headers (real cameras often do not)."""
    science_dark_factor: float = 1.0
    """Dark current in science frames relative to the darks (1: it scales cleanly with exposure
    time; a warmer sensor during the science gives more)."""
    overscan: int = 0
    """Overscan columns read out after each row (BIASSEC/TRIMSEC in the headers). With an
    overscan, the bias level also drifts by several ADU from frame to frame, as real ones do."""
    flat_exptime: float | None = None
    """Exposure of every flat (s); None: each flat between 2 and 6 s."""
    n_darkflat: int = 0
    """Dark-flats (``IMAGETYP='DARKFLAT'``) at the flats' exposure, ``flat_exptime``."""


@dataclass(frozen=True)
class Truth:
    """What the raw frames were made from."""

    bias: np.ndarray
    """Noiseless bias structure, ADU."""
    dark_current: np.ndarray
    """Electrons per second."""
    hot: np.ndarray
    """True where the dark current is a hot pixel's."""
    flat: np.ndarray
    """Response, mean 1."""
    dead: np.ndarray
    """True where the response is dead or weak (cold pixel)."""
    science: dict[str, np.ndarray] = field(default_factory=dict)
    """Expected reduced image (ADU, noiseless sky + stars) per science file name."""
    cosmics: dict[str, np.ndarray] = field(default_factory=dict)
    saturated: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulatedNight:
    """Where a simulated night was written, and its truth."""

    raw_dir: Path
    truth_dir: Path
    files: dict[str, list[Path]]
    truth: Truth
    model: CameraModel


def _bias_structure(model: CameraModel, rng: np.random.Generator) -> np.ndarray:
    n = model.size
    columns = rng.normal(0.0, 1.5, n)
    rows = np.linspace(-1.0, 1.0, n)[:, None] * 2.0
    return (model.bias_level + columns[None, :] + rows).astype(np.float64)


def _dark_current(model: CameraModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = model.size
    yy, xx = np.mgrid[0:n, 0:n] / n
    rate = model.dark_current * (1.0 + 0.3 * xx + 0.2 * yy)
    hot = rng.random((n, n)) < model.hot_fraction
    # From barely detectable (0.1 e/s) to saturating in a long dark (~500 e/s).
    rate[hot] += np.exp(rng.uniform(np.log(0.1), np.log(500.0), hot.sum()))
    return rate, hot


def _flat(model: CameraModel, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = model.size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    centre = (n - 1) / 2.0
    r2 = ((xx - centre) ** 2 + (yy - centre) ** 2) / (centre**2 * 2)
    flat = 1.0 - 0.3 * r2
    flat *= 1.0 + rng.normal(0.0, 0.01, (n, n))
    for _ in range(max(2, n // 256)):
        cx, cy = rng.uniform(0.15 * n, 0.85 * n, 2)
        radius = rng.uniform(0.015, 0.03) * n
        width = max(1.5, radius * 0.25)
        depth = rng.uniform(0.04, 0.10)
        dist = np.hypot(xx - cx, yy - cy)
        ring = np.exp(-0.5 * ((dist - radius) / width) ** 2)
        flat *= 1.0 - depth * ring - 0.3 * depth * (dist < radius)
    cold = rng.random((n, n)) < model.cold_fraction
    # From dead (0) to merely weak (0.7).
    response = rng.uniform(0.0, 0.7, cold.sum())
    response[rng.random(cold.sum()) < 0.1] = 0.0
    flat[cold] *= response
    flat /= flat[~cold].mean()
    return flat, cold


def _stars(model: CameraModel, rng: np.random.Generator) -> np.ndarray:
    """Star fluxes per second (e/s) drawn on the frame, the same field for every exposure."""
    n = model.size
    image = np.zeros((n, n))
    yy, xx = np.mgrid[0:n, 0:n]
    fluxes = 50.0 * (1.0 - rng.random(model.n_stars)) ** (-1.5)
    fluxes = np.minimum(fluxes, 2e5)
    sigma = 1.8
    for flux in fluxes:
        cx, cy = rng.uniform(10, n - 10, 2)
        x0, x1 = int(max(0, cx - 12)), int(min(n, cx + 13))
        y0, y1 = int(max(0, cy - 12)), int(min(n, cy + 13))
        sub_x, sub_y = xx[y0:y1, x0:x1], yy[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += flux / (2 * np.pi * sigma**2) * np.exp(
            -0.5 * ((sub_x - cx) ** 2 + (sub_y - cy) ** 2) / sigma**2)
    return image


def _cosmics(model: CameraModel, exptime: float, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    n = model.size
    hits = rng.poisson(model.cosmic_rate * exptime * (n * n) / 1e6)
    charge = np.zeros((n, n))
    for _ in range(hits):
        x, y = rng.integers(2, n - 2, 2)
        length = rng.integers(1, 5)
        angle = rng.uniform(0, np.pi)
        energy = rng.uniform(1500.0, 20000.0)
        for step in range(length):
            px = int(round(x + step * np.cos(angle)))
            py = int(round(y + step * np.sin(angle)))
            if 0 <= px < n and 0 <= py < n:
                charge[py, px] += energy / length
    return charge, charge > 0


def _readout(model: CameraModel, electrons: np.ndarray, bias: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    collected = np.minimum(rng.poisson(np.maximum(electrons, 0)).astype(np.float64),
                           model.full_well)
    collected += rng.normal(0.0, model.read_noise, electrons.shape)
    offset = rng.normal(0.0, 5.0 if model.overscan else 0.3)
    adu = bias + offset + collected / model.gain
    if model.overscan:
        rows = electrons.shape[0]
        empty = rng.normal(0.0, model.read_noise, (rows, model.overscan)) / model.gain
        adu = np.hstack([adu, bias[:, -1:] - bias[:, -1:].mean() + model.bias_level + offset
                         + empty])
    return np.clip(np.round(adu), 0, ADC_MAX).astype(np.uint16)


def _header(model: CameraModel, acqtype: str, exptime: float, when: datetime,
            filt: str | None, obj: str) -> fits.Header:
    header = fits.Header()
    header["TELESCOP"] = ("C2PU", "simulated by ccdred")
    header["INSTRUME"] = "SIMCAM"
    header["ACQTYPE"] = (acqtype, "acquisition type")
    header["OBJECT"] = obj
    header["DATE-OBS"] = when.isoformat(timespec="milliseconds")
    header["EXPTIME"] = (float(exptime), "[s] exposure time")
    if filt:
        header["FILTER"] = filt
    header["XBINNING"] = 1
    header["YBINNING"] = 1
    header["CCD-TEMP"] = (model.temperature, "[C] detector temperature")
    if model.overscan:
        n = model.size
        header["BIASSEC"] = (f"[{n + 1}:{n + model.overscan},1:{n}]", "overscan columns")
        header["TRIMSEC"] = (f"[1:{n},1:{n}]", "useful data")
    if model.noise_keywords:
        header["GAIN"] = (model.gain, "[e-/ADU]")
        header["RDNOISE"] = (model.read_noise, "[e-] read noise")
    return header


def _name(kind: str, when: datetime, code: str, filt: str, exptime: float, index: int) -> str:
    stamp = when.strftime("%Y%m%dT%H%M%S") + f"{when.microsecond // 1000:03d}"
    seconds = f"{int(exptime):04d}s{int(round((exptime % 1) * 1000)):03d}"
    return f"{kind}_{stamp}_{code}_{filt}_{seconds}_{index:06d}.fits"


def simulate_night(out_dir: str | Path, *, model: CameraModel = CameraModel(), seed: int = 0
                   ) -> SimulatedNight:
    """Write a raw night to ``out_dir/raw`` and its truth to ``out_dir/truth``.

    Parameters
    ----------
    out_dir : path
        Created if missing; ``raw/`` and ``truth/`` must not already hold files.
    model : CameraModel
        The camera and night.
    seed : int
        Seed of `numpy.random.default_rng`: the same seed writes the same night.
    """
    if model.size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {model.size}")
    out = Path(out_dir)
    raw, truth_dir = out / "raw", out / "truth"
    for folder in (raw, truth_dir):
        if folder.exists() and any(folder.iterdir()):
            raise ValueError(f"{folder}: already holds files; choose an empty output directory")
    if model.n_darkflat and model.flat_exptime is None:
        raise ValueError("dark-flats need the flats' exposure: set flat_exptime")
    rng = np.random.default_rng(seed)
    bias = _bias_structure(model, rng)
    dark_rate, hot = _dark_current(model, rng)
    flat, dead = _flat(model, rng)
    stars = _stars(model, rng)
    truth = Truth(bias=bias, dark_current=dark_rate, hot=hot, flat=flat, dead=dead)
    night = _Writer(raw, model, rng, truth)
    night.calibrations(datetime(2015, 11, 28, 14, 8, 48, 418000))
    night.science(datetime(2015, 11, 26, 22, 8, 48, 418000), stars)
    night.darkflats(datetime(2015, 11, 28, 16, 0, 0))
    _write_truth(truth, truth_dir, model)
    return SimulatedNight(raw_dir=raw, truth_dir=truth_dir, files=night.files, truth=truth,
                          model=model)


@dataclass
class _Writer:
    """Writes a night's raw frames, drawing from one random generator in a fixed order."""

    raw: Path
    model: CameraModel
    rng: np.random.Generator
    truth: Truth
    files: dict[str, list[Path]] = field(default_factory=lambda: {
        "bias": [], "dark": [], "flat": [], "science": []})

    def write(self, folder: str, kind: str, name: str, data: np.ndarray,
              header: fits.Header) -> None:
        path = self.raw / folder / name
        write_raw(data, header, path)
        self.files.setdefault(kind, []).append(path)

    def frame(self, electrons: np.ndarray) -> np.ndarray:
        return _readout(self.model, electrons, self.truth.bias, self.rng)

    def calibrations(self, clock: datetime) -> None:
        model, rng, rate = self.model, self.rng, self.truth.dark_current
        for i in range(model.n_bias):
            clock += timedelta(seconds=20)
            data = self.frame(np.zeros_like(self.truth.bias))
            self.write("bias", "bias", _name("BIAS", clock, "BI", model.filter, 0.0, i), data,
                       _header(model, "BIAS", 0.0, clock, None, "bias"))
        for i in range(model.n_dark):
            clock += timedelta(seconds=model.dark_exptime + 15)
            charge, _ = _cosmics(model, model.dark_exptime, rng)
            data = self.frame(rate * model.dark_exptime + charge)
            self.write("darks", "dark", _name("DARK", clock, "DK", model.filter,
                                              model.dark_exptime, i),
                       data, _header(model, "DARK", model.dark_exptime, clock, None, "dark"))
        for i in range(model.n_flat):
            clock += timedelta(seconds=60)
            exptime = float(np.round(rng.uniform(2.0, 6.0), 2))
            exptime = exptime if model.flat_exptime is None else model.flat_exptime
            level = model.flat_level * rng.uniform(0.8, 1.2) * model.gain
            charge, _ = _cosmics(model, exptime, rng)
            data = self.frame(self.truth.flat * level + rate * exptime + charge)
            self.write("flats", "flat", _name("FLAT", clock, "FF", model.filter, exptime, i),
                       data, _header(model, "FLAT", exptime, clock, model.filter, "dome flat"))

    def science(self, clock: datetime, stars: np.ndarray) -> None:
        model, truth = self.model, self.truth
        for i, exptime in enumerate(model.science_exptimes):
            clock += timedelta(seconds=exptime + 30)
            signal = (model.sky_rate + stars) * exptime
            charge, hits = _cosmics(model, exptime, self.rng)
            data = self.frame(truth.flat * signal + charge
                              + model.science_dark_factor * truth.dark_current * exptime)
            name = _name("1978-VF11", clock, "SC", model.filter, exptime, i)
            self.write("data", "science", name, data,
                       _header(model, "SCIENCE", exptime, clock, model.filter, "1978 VF11"))
            truth.science[name] = signal / model.gain
            truth.cosmics[name] = hits
            truth.saturated[name] = data[:, :model.size] >= ADC_MAX

    def darkflats(self, clock: datetime) -> None:
        model = self.model
        for i in range(model.n_darkflat):
            clock += timedelta(seconds=model.flat_exptime + 5)
            charge, _ = _cosmics(model, model.flat_exptime, self.rng)
            data = self.frame(self.truth.dark_current * model.flat_exptime + charge)
            self.write("darkflats", "darkflat", _name("DARKFLAT", clock, "DF", model.filter,
                                                      model.flat_exptime, i),
                       data, _header(model, "DARKFLAT", model.flat_exptime, clock, None,
                                     "dark flat"))


def _write_truth(truth: Truth, folder: Path, model: CameraModel) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    header = fits.Header()
    header["GAIN"] = (model.gain, "[e-/ADU] true gain")
    header["RDNOISE"] = (model.read_noise, "[e-] true read noise")
    images = {
        "bias.fits": truth.bias.astype(np.float32),
        "dark_current.fits": truth.dark_current.astype(np.float32),
        "hot_pixels.fits": truth.hot.astype(np.uint8),
        "flat.fits": truth.flat.astype(np.float32),
        "dead_pixels.fits": truth.dead.astype(np.uint8),
    }
    for name, image in images.items():
        fits.PrimaryHDU(image, header=header).writeto(folder / name, overwrite=True)
    for name, image in truth.science.items():
        stem = name.removesuffix(".fits")
        fits.PrimaryHDU(image.astype(np.float32), header=header).writeto(
            folder / f"{stem}_sky.fits", overwrite=True)
        fits.PrimaryHDU(truth.cosmics[name].astype(np.uint8)).writeto(
            folder / f"{stem}_cosmics.fits", overwrite=True)
