"""The installed ccdred version (written into every product)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccdred")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
