"""Shared fixtures: a simulated night (with truth), its reduction, and the real data folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ccdred.simulate import CameraModel, simulate_night

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SIM_MODEL = CameraModel(size=256, n_stars=40)


@pytest.fixture(scope="session")
def sim_night(tmp_path_factory):
    """A simulated 256x256 night with its truth (read-only for tests)."""
    return simulate_night(tmp_path_factory.mktemp("sim"), model=SIM_MODEL, seed=7)


@pytest.fixture(scope="session")
def reduced_night(sim_night, tmp_path_factory):
    """The simulated night reduced with default options."""
    from ccdred import reduce_night

    out = tmp_path_factory.mktemp("reduced")
    return reduce_night(sim_night.raw_dir, out)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def ccdred_command() -> list[str]:
    """The installed console script (the real entry point)."""
    script = Path(sys.executable).parent / "ccdred"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ccdred"]
