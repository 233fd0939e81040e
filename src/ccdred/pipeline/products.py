"""What a run writes: `Product` records, the manifest, and the resume keys that decide what is kept.

The manifest (``OUT/manifest.json``) is written and read here only: `write_manifest`,
`read_manifest`. Each product's header holds ``CCDRKEY``, a hash (`product_key`) of everything
it was made from; a re-run keeps a product whose key is unchanged (`up_to_date`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import io
from .._version import __version__
from ..errors import BadInputError

__all__ = ["Product", "Input", "Manifest", "MASTER", "BADPIX", "REDUCED", "write_manifest",
           "read_manifest", "product_key", "up_to_date", "remove_stale_parts",
           "master_reference", "MANIFEST_NAME", "version"]

MASTER, BADPIX, REDUCED = "master", "badpix", "reduced"
"""Product roles."""
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Input:
    """A file a product was made from, with its SHA-256."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class Product:
    """One file a run made (or kept, or borrowed from the library).

    ``role`` is `MASTER`, `BADPIX` or `REDUCED`; ``kind`` is a master's recipe kind
    (``bias``, ``dark``...); ``name`` is its name in the plan (``dark_300s``, ``badpix``) or a
    reduced frame's file name.
    """

    path: Path
    role: str
    name: str
    sha256: str
    kind: str | None = None
    inputs: tuple[Input, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_master(self) -> bool:
        """True for a master calibration frame."""
        return self.role == MASTER

    def to_json(self) -> dict[str, Any]:
        """Return the manifest entry (``role`` is ``master_<kind>`` for masters)."""
        role = f"{MASTER}_{self.kind}" if self.role == MASTER else self.role
        return {"name": self.name, "path": str(self.path), "role": role,
                "inputs": [{"path": str(i.path), "sha256": i.sha256} for i in self.inputs],
                "parameters": dict(self.parameters), "sha256": self.sha256}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Product:
        """Read a manifest entry back."""
        role, kind = str(entry["role"]), None
        if role.startswith(f"{MASTER}_"):
            role, kind = MASTER, role.removeprefix(f"{MASTER}_")
        path = Path(entry["path"])
        return cls(path=path, role=role, name=str(entry.get("name") or path.stem),
                   sha256=str(entry["sha256"]), kind=kind,
                   inputs=tuple(Input(Path(i["path"]), str(i["sha256"]))
                                for i in entry.get("inputs", [])),
                   parameters=dict(entry.get("parameters", {})))


def made(path: Path, role: str, name: str, *, kind: str | None = None,
         inputs: Sequence[Input] = (), parameters: Mapping[str, Any] | None = None) -> Product:
    """Describe a product file just written or kept (its checksum is computed here)."""
    return Product(Path(path), role, name, io.sha256(path), kind, tuple(inputs),
                   dict(parameters or {}))


@dataclass(frozen=True)
class Manifest:
    """Everything a run made and how: options, noise models, plan and products."""

    ccdred_version: str
    created: str
    raw_dir: str
    options: Mapping[str, Any]
    noise: Mapping[str, Any]
    plan: Mapping[str, Any]
    products: tuple[Product, ...]
    warnings: tuple[str, ...] = ()
    """What the run found beyond the plan's warnings (from the masters' pixels)."""

    def masters(self) -> list[Product]:
        """Return the master products (including borrowed ones), in plan order."""
        return [p for p in self.products if p.is_master]

    def reduced(self) -> list[Product]:
        """Return the reduced science frames, in plan order."""
        return [p for p in self.products if p.role == REDUCED]

    def to_json(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready data."""
        return {"ccdred_version": self.ccdred_version, "created": self.created,
                "raw_dir": self.raw_dir, "options": dict(self.options),
                "noise": dict(self.noise), "plan": dict(self.plan),
                "products": [p.to_json() for p in self.products],
                "warnings": list(self.warnings)}


def write_manifest(out: Path, manifest: Manifest) -> Path:
    """Write ``out/manifest.json`` atomically."""
    path = Path(out) / MANIFEST_NAME
    with io.atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_json(), indent=2, default=str) + "\n",
                       encoding="utf-8")
    return path


def read_manifest(out: str | Path) -> Manifest:
    """Read ``out/manifest.json``.

    Raises
    ------
    BadInputError
        There is no readable manifest in ``out``.
    """
    path = Path(out) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(ccdred_version=str(data.get("ccdred_version", "")),
                        created=str(data.get("created", "")), raw_dir=str(data["plan"]["raw_dir"]),
                        options=data.get("options", {}), noise=data.get("noise", {}),
                        plan=data["plan"],
                        products=tuple(Product.from_json(p) for p in data["products"]),
                        warnings=tuple(data.get("warnings", [])))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadInputError(path, f"no readable manifest: reduce the night first ({err})"
                            ) from err


def product_key(description: Mapping[str, Any]) -> str:
    """Hash of everything a product depends on (JSON, keys sorted): its ``CCDRKEY``."""
    text = json.dumps({**description, "version": version()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def up_to_date(path: Path, key: str) -> bool:
    """Tell whether ``path`` is a complete product made from the same inputs and parameters."""
    if not path.is_file():
        return False
    try:
        return io.read_header(path).get("CCDRKEY") == key
    except BadInputError:
        return False


STALE_FOLDERS = ("masters", "reduced", "report")
"""Folders of an output whose temporary files a killed run may have left (the output's own
top level too: the manifest)."""


def remove_stale_parts(out: Path) -> list[Path]:
    """Remove temporary files a killed run left behind (products are renamed into place).

    Only ccdred's own temporary names (``.<name>.<random>.part``) in the output's top level
    and its product folders (the report's figures included) are removed; returns them.
    """
    parts = list(out.glob(".*.part")) if out.is_dir() else []
    for name in STALE_FOLDERS:
        folder = out / name
        if folder.is_dir() and not folder.is_symlink():
            parts += folder.rglob(".*.part")
    for part in parts:
        part.unlink(missing_ok=True)
    return parts


def master_reference(path: Path, out: Path) -> str:
    """How a product names a master: ``masters/x.fits`` in this run, the full path otherwise."""
    path = Path(path)
    return f"masters/{path.name}" if path.parent == out / "masters" else str(path)


def version() -> str:
    """Return the ccdred version written into products and keys."""
    return __version__
