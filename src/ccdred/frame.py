"""Frame: one image with its variance, data-quality flags and header.

Only this module's arithmetic propagates variance and ORs flags; steps never do it by hand.
"""

from __future__ import annotations

import dataclasses
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .flags import BAD, Flag, flagged

__all__ = ["Frame"]

_REPR_KEYS = ("IMAGETYP", "EXPTIME", "FILTER", "DATE-OBS")


def _as_float(array: Any, name: str) -> np.ndarray:
    """float32, unless the array is already float64 (kept when a caller asked for it)."""
    out = np.asarray(array)
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image, got shape {out.shape}")
    if out.dtype == np.float64:
        return out
    return out.astype(np.float32, copy=False)


@dataclass(frozen=True, eq=False)
class Frame:
    """An image with variance, DQ flags and header; operations return new frames.

    Parameters
    ----------
    data : ndarray
        The image, float32 (converted on construction; float64 is kept), in ADU unless
        ``header['BUNIT']`` says.
    variance : ndarray or None
        Per-pixel variance of ``data`` (same units squared); None when unknown.
    dq : ndarray
        uint16 bit flags from `ccdred.flags.Flag`; zeros when omitted.
    header : astropy.io.fits.Header
        The metadata; arithmetic keeps the left operand's header.
    path : Path or None
        The file the frame was read from, if any.
    """

    data: np.ndarray
    variance: np.ndarray | None = None
    dq: np.ndarray | None = None
    header: fits.Header = field(default_factory=fits.Header)
    path: Path | None = None

    def __post_init__(self) -> None:
        data = _as_float(self.data, "data")
        object.__setattr__(self, "data", data)
        if self.variance is not None:
            variance = _as_float(self.variance, "variance")
            if variance.shape != data.shape:
                raise ValueError(f"variance shape {variance.shape} != data shape {data.shape}")
            object.__setattr__(self, "variance", variance)
        if self.dq is None:
            object.__setattr__(self, "dq", np.zeros(data.shape, dtype=np.uint16))
        else:
            dq = np.asarray(self.dq)
            if dq.shape != data.shape:
                raise ValueError(f"dq shape {dq.shape} != data shape {data.shape}")
            object.__setattr__(self, "dq", dq.astype(np.uint16, copy=False))

    # -- convenience -----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Image shape as (rows, columns)."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def uncertainty(self) -> np.ndarray | None:
        """Standard deviation, ``sqrt(variance)``, or None."""
        return None if self.variance is None else np.sqrt(self.variance)

    @property
    def bad(self) -> np.ndarray:
        """Boolean image: True where a flag says the value should not be trusted."""
        return flagged(self.dq, BAD)

    def has(self, flags: Flag) -> np.ndarray:
        """Return a boolean image, True where any of ``flags`` is set."""
        return flagged(self.dq, flags)

    def replace(self, **changes: Any) -> Frame:
        """Return a copy with some fields replaced (arrays are shared, never modified)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        """One line: shape, dtype, variance, the flags set (pixel counts), a few header keys."""
        rows, cols = self.shape
        flags = ", ".join(f"{flag.name} {n:,}" for flag in Flag
                          if (n := int(np.count_nonzero(self.dq & np.uint16(flag)))))
        keys = " ".join(f"{key}={self.header[key]!r}" for key in _REPR_KEYS
                        if key in self.header)
        parts = [f"{cols}x{rows} {self.data.dtype}",
                 "variance" if self.variance is not None else "no variance",
                 f"flags: {flags}" if flags else "no flags"]
        if keys:
            parts.append(keys)
        if self.path is not None:
            parts.append(f"from {self.path.name}")
        return f"Frame({'; '.join(parts)})"

    def _repr_png_(self) -> bytes:
        """Show the frame and a central cutout in Jupyter."""
        from .plots import frame_figure, png_bytes

        return png_bytes(frame_figure(self))

    def with_flags(self, where: np.ndarray, flag: Flag) -> Frame:
        """Return a copy with ``flag`` OR-ed into the DQ where ``where`` is True."""
        dq = self.dq.copy()  # and OR-ed in place: no full-frame temporary to fault in
        np.bitwise_or(dq, np.uint16(flag), out=dq,
                      where=np.broadcast_to(np.asarray(where, dtype=bool), dq.shape))
        return self.replace(dq=dq)

    def with_header(self, cards: dict[str, Any] | None = None, history: list[str] | None = None
                    ) -> Frame:
        """Return a copy whose header has extra cards and HISTORY lines."""
        header = self.header.copy()
        for key, value in (cards or {}).items():
            set_card(header, key, value)
        for line in history or []:
            header.add_history(fits_text(line))
        return self.replace(header=header)

    # -- arithmetic ------------------------------------------------------------------------
    def _check_shape(self, other: Frame) -> None:
        if other.shape != self.shape:
            raise ValueError(
                f"shape mismatch: {self._name()} is {self.shape[1]}x{self.shape[0]} but "
                f"{other._name()} is {other.shape[1]}x{other.shape[0]} (columns x rows)"
            )

    def _name(self) -> str:
        return str(self.path.name) if self.path else "frame"

    def __sub__(self, other: Frame | float) -> Frame:
        if not isinstance(other, Frame):
            return self.replace(data=self.data - np.float32(other))
        self._check_shape(other)
        variance = _sum_variance(self.variance, other.variance)
        return self.replace(data=self.data - other.data, variance=variance,
                            dq=self.dq | other.dq)

    def __mul__(self, factor: float) -> Frame:
        if isinstance(factor, Frame):
            return NotImplemented
        k = np.float32(factor)
        variance = None
        if self.variance is not None:
            variance = self.variance * k
            variance *= k  # (v * k) * k, as before, without a second full-frame array
        return self.replace(data=self.data * k, variance=variance)

    __rmul__ = __mul__

    def __truediv__(self, other: Frame | float) -> Frame:
        if not isinstance(other, Frame):
            return self * (1.0 / float(other))
        self._check_shape(other)
        with np.errstate(divide="ignore", invalid="ignore"):
            quotient = self.data / other.data
            variance = None
            if self.variance is not None or other.variance is not None:
                # var_a / b^2 + q^2 var_b / b^2, in place: two full-frame arrays, not six.
                inv2 = other.data * other.data
                np.reciprocal(inv2, out=inv2)
                variance = np.zeros(self.shape, np.float32)
                if other.variance is not None:
                    np.multiply(quotient, quotient, out=variance)
                    variance *= other.variance
                    variance *= inv2
                if self.variance is not None:
                    inv2 *= self.variance
                    variance += inv2
        return self.replace(data=quotient, variance=variance, dq=self.dq | other.dq)

    # -- astropy interoperability ------------------------------------------------------------
    def to_ccddata(self):
        """Return an `astropy.nddata.CCDData` with std-dev uncertainty and a boolean mask."""
        from astropy.nddata import CCDData, StdDevUncertainty

        unit = self.header.get("BUNIT", "adu")
        uncertainty = None if self.variance is None else StdDevUncertainty(self.uncertainty)
        return CCDData(self.data, unit=unit, uncertainty=uncertainty, mask=self.bad,
                       meta=self.header.copy())

    @classmethod
    def from_ccddata(cls, ccd) -> Frame:
        """Build a frame from an `astropy.nddata.CCDData` (mask becomes NO_DATA)."""
        from astropy.nddata import StdDevUncertainty

        variance = None
        if ccd.uncertainty is not None:
            std = ccd.uncertainty.represent_as(StdDevUncertainty).array
            variance = np.asarray(std, dtype=np.float32) ** 2
        dq = None
        if ccd.mask is not None:
            dq = np.where(ccd.mask, np.uint16(Flag.NO_DATA), np.uint16(0))
        header = fits.Header(ccd.meta) if ccd.meta else fits.Header()
        header["BUNIT"] = ccd.unit.to_string()
        return cls(np.asarray(ccd.data), variance=variance, dq=dq, header=header)


def fits_text(text: str) -> str:
    """Make text FITS-legal (printable ASCII): accents dropped, anything else becomes ``?``.

    File names such as ``M31 Andromède.fits`` end up in headers; the manifest keeps them whole.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c if " " <= c <= "~" else "?" for c in plain)


def set_card(header: fits.Header, key: str, value: Any) -> None:
    """Set ``header[key] = value`` (or ``(value, comment)``), dropping a comment too long to fit.

    Text is made FITS-legal with `fits_text`.
    """
    if isinstance(value, tuple):
        value = tuple(fits_text(v) if isinstance(v, str) else v for v in value)
    elif isinstance(value, str):
        value = fits_text(value)
    if isinstance(value, tuple):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits.Card(key, *value).image  # noqa: B018 - formatting warns when too long
        if caught:
            value = value[0]
    header[key] = value


def _sum_variance(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b
