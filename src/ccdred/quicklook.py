"""Quick-look figures drawn straight into pixels: a frame beside its cutout, with colour bars.

The night report draws one such figure per frame; matplotlib takes about a second a figure
whatever the frame's size (axes, ticks, text), more than calibrating a 1024 x 1024 frame.
Here the panels are the frame's pixels (block-averaged to the panel's size, so no aliasing),
scaled to grey levels by numpy and laid out with Pillow: the same content (full frame with the
cutout outlined, the cutout, a colour bar beside each in the frame's units, pixel axes,
titles) in a few tens of milliseconds. `ccdred.plots` keeps the matplotlib figures for
notebooks and ``ccdred show``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import atomic_output
from .display import (
    Cutout,
    binned,
    colour_limits,
    colour_preview,
    default_cutout,
    frame_colour,
    unit_label,
)

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont  # noqa: F401

    from .frame import Frame

__all__ = ["PANEL", "panel_pixels", "write_quicklook", "write_thumbnail"]

PANEL = 360
"""Largest side of an image panel, in pixels."""
_ZOOM = 420
"""Largest side of a cutout panel: a 2048-pixel frame's default cutout (409) unbinned."""
_BAR = 14
"""Width of a colour bar, in pixels."""
_FONT_SIZE = 11
_LEFT, _TOP, _BOTTOM, _BAR_GAP, _BAR_LABELS = 52, 36, 36, 8, 62
_TICK = 4


@functools.lru_cache(maxsize=2)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, the font matplotlib ships (no system font needed; matplotlib not imported)."""
    from importlib.util import find_spec

    from PIL import ImageFont

    package = Path(next(iter(find_spec("matplotlib").submodule_search_locations)))
    return ImageFont.truetype(str(package / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"),
                              size)


@functools.lru_cache(maxsize=1024)
def _text_mask(text: str, anchor: str, mode: str) -> tuple[Image.Image, int, int]:
    """Return ``text`` drawn as a mask (``mode`` "1" or "L"), and its offset from ``anchor``.

    A night's figures repeat the same few labels (tick values, units, axis names): each is
    rendered by FreeType once, then pasted.
    """
    from PIL import Image, ImageDraw

    font = _font(_FONT_SIZE)
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = Image.new(mode, (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return mask, left, top


_GREYS = 254
"""Grey levels of a monochrome figure: palette indices 0-253; 254 is red, 255 white."""
_RED, _WHITE = 254, 255


def _palette() -> list[int]:
    greys = [round(i * 255 / (_GREYS - 1)) for i in range(_GREYS)]
    return [v for g in greys for v in (g, g, g)] + [214, 39, 40] + [255, 255, 255]


def panel_pixels(data: np.ndarray, limits: tuple[float, float], size: int = PANEL,
                 levels: int = 256) -> tuple[np.ndarray, float]:
    """Return an image as grey levels (uint8, row 0 at the top) and its pixels per data pixel.

    Larger than ``size`` on a side, it is block-averaged to fit (whole blocks: no aliasing);
    smaller, each pixel is repeated (nearest, pixel-exact). ``limits`` map to levels 0 and
    ``levels - 1``; non-finite pixels are 0.
    """
    factor = int(np.ceil(max(data.shape) / size))
    if factor > 1:
        small, scale = binned(data, size), 1.0 / factor
    else:
        repeat = max(1, size // max(data.shape))
        small = np.repeat(np.repeat(data, repeat, axis=0), repeat, axis=1)
        scale = float(repeat)
    low, high = limits
    with np.errstate(invalid="ignore"):
        grey = np.clip((small.astype(np.float32) - np.float32(low))
                       * np.float32((levels - 1) / (high - low)) + np.float32(0.5),
                       0, levels - 1)
    grey = np.where(np.isfinite(grey), grey, 0).astype(np.uint8)
    return grey[::-1], scale


def _rgb_pixels(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    channels = [panel_pixels(rgb[..., c], (0.0, 1.0), size) for c in range(3)]
    return np.stack([c[0] for c in channels], axis=-1), channels[0][1]


def _ticks(low: float, high: float, pixels: float) -> list[float]:
    """Round values between ``low`` and ``high``: at most 5, and one per 28 pixels of axis.

    Steps of 1, 2, 2.5 or 5 times a power of ten, the smallest that gives no more ticks than
    that (as matplotlib's MaxNLocator chooses them).
    """
    count = int(min(5, pixels // 28))
    if count < 1 or not high > low:
        return []
    magnitude = 10.0 ** np.floor(np.log10((high - low) / count))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if (high - low) / (m * magnitude)
                <= count)
    values = np.arange(np.ceil(low / step), np.floor(high / step) + 1) * step
    return [float(v) + 0.0 for v in np.round(values / step) * step if low <= v <= high]


def _label(value: float) -> str:
    return f"{value:.6g}"


class _Canvas:
    """A white image with a Pillow pen and the figure's font.

    Monochrome figures are palette images (grey levels and red: a third of the bytes of RGB
    to compress, the slowest part of writing a figure); colour previews are RGB.
    """

    def __init__(self, width: int, height: int, colour: bool):
        from PIL import Image, ImageDraw

        self.colour = colour
        if colour:
            self.image: Image.Image = Image.new("RGB", (width, height), "white")
        else:
            self.image = Image.new("P", (width, height), _WHITE)
            self.image.putpalette(_palette())
        self.draw: ImageDraw.ImageDraw = ImageDraw.Draw(self.image)
        self.font = _font(_FONT_SIZE)
        self.black = (0, 0, 0) if colour else 0
        self.red = (214, 39, 40) if colour else _RED
        self.levels = 256 if colour else _GREYS

    def text(self, xy: tuple[float, float], text: str, anchor: str = "la") -> None:
        """Write ``text`` at the nearest whole pixel to ``xy`` (rendered once per process)."""
        if "\n" in text:  # a title from an odd file name: Pillow lays out the lines
            self.draw.text(xy, text, fill=self.black, font=self.font, anchor=anchor)
            return
        mask, left, top = _text_mask(text, anchor, self.draw.fontmode)
        self.image.paste(self.black, (round(xy[0]) + left, round(xy[1]) + top), mask)

    def paste(self, pixels: np.ndarray, x: int, y: int) -> None:
        """Paste grey levels (or RGB) as they are: no conversion through another palette."""
        from PIL import Image

        tile = Image.fromarray(np.ascontiguousarray(pixels))
        if not self.colour:
            tile.putpalette(_palette())
        elif tile.mode == "L":
            tile = tile.convert("RGB")
        self.image.paste(tile, (x, y))

    def panel(self, pixels: np.ndarray, x: int, y: int, extent: tuple[float, float, float,
                                                                       float],
              per_pixel: float) -> None:
        """Paste ``pixels`` with its top-left at (x, y); pixel axes below and on the left.

        ``extent``: first column, first row, columns, rows of the data shown;
        ``per_pixel``: panel pixels per data pixel.
        """
        self.paste(pixels, x, y)
        height, width = pixels.shape[:2]
        self.draw.rectangle((x - 1, y - 1, x + width, y + height), outline=self.black)
        origin_x, origin_y, cols, rows = extent
        for value in _ticks(origin_x, origin_x + cols, width):
            px = x + (value - origin_x + 0.5) * per_pixel
            self.draw.line((px, y + height, px, y + height + _TICK), fill=self.black)
            self.text((px, y + height + _TICK + 1), _label(value), "ma")
        for value in _ticks(origin_y, origin_y + rows, height):
            py = y + height - (value - origin_y + 0.5) * per_pixel
            self.draw.line((x - _TICK - 1, py, x - 1, py), fill=self.black)
            self.text((x - _TICK - 3, py), _label(value), "rm")
        self.text((x + width / 2, y + height + _TICK + 15), "x (pixel)", "ma")

    def colour_bar(self, x: int, y: int, height: int, limits: tuple[float, float],
                   unit: str) -> None:
        """Draw a grey ramp from ``limits[0]`` (bottom) to ``limits[1]`` (top), labelled."""
        top = self.levels - 1
        ramp = np.linspace(top, 0, height).round().astype(np.uint8)[:, None]
        self.paste(ramp.repeat(_BAR, axis=1), x, y)
        self.draw.rectangle((x - 1, y - 1, x + _BAR, y + height), outline=self.black)
        low, high = limits
        for value in _ticks(low, high, height):
            py = y + height - 1 - (value - low) / (high - low) * (height - 1)
            self.draw.line((x + _BAR, py, x + _BAR + _TICK, py), fill=self.black)
            self.text((x + _BAR + _TICK + 2, py), _label(value), "lm")
        self.text((x, y + height + _TICK + 1), unit, "la")


def _row(canvas: _Canvas, frame: Frame, cutout: Cutout, title: str, top: int,
         scale: str) -> None:
    """Draw one frame's row (panels from ``top``): full frame, its bar, the cutout, its bar."""
    rows, cols = frame.shape
    row0, row1, col0, col1 = cutout.bounds(frame.shape)
    cfa = frame_colour(frame)
    x = _LEFT
    limits = None
    if cfa:
        rgb = colour_preview(frame.data, cfa)
        full, per_pixel = _rgb_pixels(rgb, PANEL)
        zoom, zoom_per_pixel = _rgb_pixels(rgb[row0:row1, col0:col1], _ZOOM)
        title = f"{title} (colour preview, {cfa})"
    else:
        limits = colour_limits(frame.data, scale)
        full, per_pixel = panel_pixels(frame.data, limits, levels=canvas.levels)
        zoom, zoom_per_pixel = panel_pixels(frame.data[row0:row1, col0:col1], limits, _ZOOM,
                                            levels=canvas.levels)
    if per_pixel < 1:
        factor = round(1 / per_pixel)
        title = f"{title} (shown binned {factor}x{factor}" + (
            "; colour bar: block means)" if limits is not None else ")")
    canvas.text((4, top - _TOP + 2), title)
    canvas.panel(full, x, top, (0, 0, cols, rows), per_pixel)
    height = full.shape[0]
    # The cutout outlined in red, in panel pixels (row 0 of the panel is the frame's top).
    canvas.draw.rectangle((x + col0 * per_pixel, top + height - row1 * per_pixel,
                           x + col1 * per_pixel - 1, top + height - row0 * per_pixel - 1),
                          outline=canvas.red, width=2)
    x += full.shape[1] + _BAR_GAP
    if limits is not None:
        canvas.colour_bar(x, top, height, limits, unit_label(frame))
    x = 2 * _LEFT + PANEL + _BAR_GAP + _BAR + _BAR_LABELS
    canvas.text((x, top - 3), f"cutout [{col0}:{col1}, {row0}:{row1}]", "ld")
    canvas.panel(zoom, x, top, (col0, row0, col1 - col0, row1 - row0), zoom_per_pixel)
    x += zoom.shape[1] + _BAR_GAP
    if limits is not None:
        canvas.colour_bar(x, top, zoom.shape[0], limits, unit_label(frame))


def write_quicklook(frames: Sequence[tuple[Frame, str]], path: str | Path, *,
                    cutout: Cutout | None = None, scale: str = "sigma") -> Path:
    """Write a PNG of each frame (one row each): full frame, cutout, one colour scale each.

    Parameters
    ----------
    frames : sequence of (Frame, title)
        The frames, top to bottom (a raw frame above its reduction); each on its own scale
        (`ccdred.display.colour_limits`).
    path : path
        The PNG, written atomically.
    cutout : Cutout, optional
        The zoom (the central fifth of the first frame by default).
    scale : {"sigma", "zscale"}
        How the grey levels are stretched.

    Raises
    ------
    ValueError
        No frame, or the cutout's centre is outside a frame.
    """
    if not frames:
        raise ValueError("write_quicklook needs at least one frame")
    cutout = cutout or default_cutout(frames[0][0].shape)
    for frame, _ in frames:
        cutout.check(frame.shape)
    row_height = _TOP + _ZOOM + _BOTTOM + 16
    width = 2 * (_LEFT + _BAR_GAP + _BAR + _BAR_LABELS) + PANEL + _ZOOM + 8
    canvas = _Canvas(width, row_height * len(frames),
                     colour=any(frame_colour(frame) for frame, _ in frames))
    for index, (frame, title) in enumerate(frames):
        _row(canvas, frame, cutout, title, index * row_height + _TOP + 8, scale)
    path = Path(path)
    with atomic_output(path) as tmp:
        canvas.image.save(tmp, format="png", compress_level=3)
    return path



def write_thumbnail(frame: Frame, path: str | Path, size: int = 160) -> Path:
    """Write a small PNG of ``frame``: at most ``size`` pixels a side, block-averaged.

    Monochrome: grey levels from the binned image's median - 2 sigma to + 5 sigma; a colour
    mosaic: its colour preview.
    """
    from PIL import Image

    cfa = frame_colour(frame)
    if cfa:
        pixels, _ = _rgb_pixels(colour_preview(frame.data, cfa), size)
    else:
        small = binned(frame.data, size)
        pixels, _ = panel_pixels(small, colour_limits(small), size)
    path = Path(path)
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="png", compress_level=3)
    return path
