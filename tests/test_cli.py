"""The command-line tool through its real entry point (the installed console script)."""

import json
import subprocess
from pathlib import Path

import pytest

import ccdred

from .conftest import ccdred_command

# The console script imports the ccdred under test (a worktree's, not only the installed one).
SOURCE_ROOT = str(Path(ccdred.__file__).resolve().parents[1])


def run(*args, check=True):
    result = subprocess.run([*ccdred_command(), *map(str, args)], capture_output=True,
                            text=True, timeout=600, env={"COLUMNS": "200", "PATH": "/usr/bin",
                                                         "PYTHONPATH": SOURCE_ROOT})
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def test_help_documents_exit_codes():
    out = run("--help").stdout
    assert "Exit status" in out and "2 bad input" in out


def test_help_shows_plain_flags_without_a_value_type():
    for command in (["show"], ["reduce"], ["library", "list"], []):
        out = run(*command, "--help").stdout
        assert "<bool>" not in out, command
        assert "--help" in out
    show = run("show", "--help").stdout
    assert "<str>" in show  # options that take a value still say what kind


def test_help_paragraphs_are_wrapped_by_the_terminal_not_the_docstring():
    # The docstring breaks this sentence after "frame"; the screen (160 columns) must not.
    out = run("combine", "--help").stdout
    assert "Inputs of different frame types or exposure times" in out


def test_info_says_what_a_product_is(reduced_night):
    flat = run("info", reduced_night.masters["flat_R"]).stdout
    assert "ccdred master flat (7 frames combined, filter R, ccdred " in flat
    reduced = run("info", reduced_night.reduced[0]).stdout
    raw_name = reduced_night.plan.science[0].input.path.name
    assert f"ccdred reduced frame of {raw_name} (bias " in reduced
    assert "dark " in reduced and "flat " in reduced


def test_info_prints_the_notebook_summary_line(sim_night):
    path = sim_night.files["dark"][0]
    out = run("info", path).stdout
    assert "DARK (256x256) taken with C2PU on 2015-11-28T" in out
    assert "(300.0s exposure)" in out
    assert "ACQTYPE" in run("info", "--header", path).stdout


def test_scan_table_and_json(sim_night):
    out = run("scan", sim_night.raw_dir).stdout
    assert "9 bias" in out and "7 dark" in out and "7 flat" in out and "3 science" in out
    rows = json.loads(run("scan", "--json", sim_night.raw_dir).stdout)
    assert len(rows) == 26
    assert {r["kind"] for r in rows} == {"bias", "dark", "flat", "science"}


def test_reduce_dry_run_prints_the_plan_and_writes_nothing(sim_night, tmp_path):
    out = run("reduce", sim_night.raw_dir, "-o", tmp_path / "out", "--dry-run").stdout
    assert "masters/dark_300s.fits" in out and "dark_300s x 0.4" in out
    assert not (tmp_path / "out").exists()


def test_reduce_writes_the_night(sim_night, tmp_path):
    result = run("reduce", sim_night.raw_dir, "-o", tmp_path / "out", "--no-cosmics")
    assert "3 reduced frames" in result.stdout
    assert (tmp_path / "out" / "manifest.json").exists()
    assert len(list((tmp_path / "out" / "reduced").glob("*.fits"))) == 3


def test_reduce_compress_writes_the_compact_layout_and_repair_is_a_choice(sim_night,
                                                                         reduced_night,
                                                                         tmp_path):
    from astropy.io import fits

    import ccdred

    run("reduce", sim_night.raw_dir, "-o", tmp_path / "out", "--compress", "--repair", "all",
        "--no-report")
    for small, full in zip(sorted((tmp_path / "out" / "reduced").glob("*.fits")),
                           reduced_night.reduced, strict=True):
        with fits.open(small) as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "SCI", "UNCERT", "DQ"]
        assert small.stat().st_size < full.stat().st_size / 3
        assert ccdred.read(small).header["REPAIR"] == "all"
        assert "ccdred reduced frame of" in run("info", small).stdout
    for masters in (tmp_path / "out" / "masters").glob("*.fits"):
        with fits.open(masters) as hdul:
            assert hdul[0].data is not None  # masters keep the CCDData layout
    bad = run("reduce", sim_night.raw_dir, "-o", tmp_path / "x", "--repair", "some",
              check=False)
    assert bad.returncode == 2 and "repair must be one of unusable, all, none" in bad.stderr


def test_bad_input_exits_2_with_the_file_named(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "x.fits").write_text("not fits at all")
    result = run("reduce", tmp_path / "raw", "-o", tmp_path / "out", check=False)
    assert result.returncode == 2
    assert "x.fits" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    missing = run("info", tmp_path / "nope.fits", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    # A folder that is not there, and a file given as a folder: each said as it is.
    for command in ("reduce", "scan"):
        extra = ["-o", tmp_path / "o2"] if command == "reduce" else []
        gone = run(command, tmp_path / "nope", *extra, check=False)
        assert gone.returncode == 2 and "nope: does not exist" in gone.stderr
    not_folder = run("scan", tmp_path / "raw" / "x.fits", check=False)
    assert not_folder.returncode == 2 and "x.fits: is not a directory" in not_folder.stderr
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("args", [["--method", "average"], ["--reject", "clipping"],
                                  ["--units", "furlongs"]])
def test_bad_options_exit_2(sim_night, tmp_path, args):
    result = run("reduce", sim_night.raw_dir, "-o", tmp_path / "o", *args, check=False)
    assert result.returncode == 2


def test_combine_command(sim_night, tmp_path):
    out = tmp_path / "bias.fits"
    run("combine", *sim_night.files["bias"], "-o", out, "--method", "mean", "--reject",
        "sigclip", "--memory-limit", "20M")
    import ccdred

    frame = ccdred.read(out)
    assert frame.header["NCOMBINE"] == 9 and frame.variance is not None


def test_simulate_command(tmp_path):
    run("simulate", tmp_path / "night", "--size", "128", "--seed", "3")
    assert len(list((tmp_path / "night" / "raw").rglob("*.fits"))) == 26
    assert (tmp_path / "night" / "truth" / "flat.fits").exists()


def test_instrument_file_gives_gain_and_read_noise(sim_night, tmp_path):
    settings = tmp_path / "simcam.toml"
    settings.write_text("gain = 1.62\nread_noise = 7.5\n")
    out = tmp_path / "out"
    run("reduce", sim_night.raw_dir, "-o", out, "--no-cosmics", "--instrument", settings,
        "--read-noise", "6.0")
    from astropy.io import fits

    header = fits.getheader(next((out / "reduced").glob("*.fits")))
    assert header["GAIN"] == 1.62 and header["GAINSRC"] == "instrument file simcam.toml"
    assert header["RDNOISE"] == 6.0 and header["RNSRC"] == "command line"
    settings.write_text("gain = -1\n")
    bad = run("reduce", sim_night.raw_dir, "-o", tmp_path / "o2", "--instrument", settings,
              check=False)
    assert bad.returncode == 2 and "gain must be a positive number" in bad.stderr


def test_first_run_says_it_compiles_the_kernels(tmp_path, monkeypatch, capsys):
    from ccdred.cli.app import note_first_compile
    from ccdred.kernels.cache import kernels_cached

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))  # an empty cache: numba compiles
    assert not kernels_cached()
    note_first_compile()
    assert "Compiling ccdred's kernels" in capsys.readouterr().err


def test_later_runs_do_not_say_it(tmp_path, monkeypatch, capsys):
    from ccdred.cli.app import note_first_compile
    from ccdred.kernels.cache import kernels_cached

    cache = tmp_path / "ccdred" / "kernels"
    cache.mkdir(parents=True)
    (cache / "combine.combine_block-60.py311.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert kernels_cached()
    note_first_compile()
    assert "Compiling" not in capsys.readouterr().err
