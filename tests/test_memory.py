"""The streaming combine stays within its memory limit (peak RSS, in a fresh process), with
glibc's allocator as it comes and as the ccdred command sets it in some VMs."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits

from ccdred.cli.vm_memory import ALLOCATOR_VARIABLES

SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    import numpy as np
    import ccdred

    paths = sorted(Path(sys.argv[1]).glob("*.fits"))
    limit = int(sys.argv[2])
    ccdred.combine(paths[:3], method="mean", reject="sigclip", memory_limit=limit)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = ccdred.combine(paths, method="mean", reject="sigclip", memory_limit=limit)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"before": before, "after": after,
                      "finite": bool(np.isfinite(result.frame.data).all())}))
""")


# glibc's defaults, and the settings the ccdred command makes in a VM that reports free memory.
@pytest.mark.parametrize("allocator", [{}, dict(ALLOCATOR_VARIABLES)], ids=["default", "kept"])
def test_combining_a_stack_four_times_the_limit_stays_under_it(tmp_path, allocator):
    n, size = 16, 1024
    rng = np.random.default_rng(0)
    for i in range(n):
        data = rng.normal(1000, 10, (size, size)).astype(np.uint16)
        fits.PrimaryHDU(data).writeto(tmp_path / f"f{i:02d}.fits")
    stack_bytes = n * size * size * 4  # as float32: 64 MiB
    limit = stack_bytes // 4
    env = {key: value for key, value in os.environ.items() if key not in ALLOCATOR_VARIABLES}
    env |= {name: str(value) for name, value in allocator.items()}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(limit)],
                         capture_output=True, text=True, check=True, timeout=300, env=env)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["finite"]
    grown = report["after"] - report["before"]
    # The limit covers block buffers and outputs; allow 8 MiB for per-thread row buffers,
    # the interpreter's own allocations and the result's copies.
    overhead = 8 * 2**20
    assert grown < limit + overhead, (grown / 2**20, limit / 2**20)
