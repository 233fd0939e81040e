"""The integer codes the compiled combine kernels take, in a module that loads no compiler.

Options are validated and translated to these codes before any kernel is imported, so the
command line starts without numba.
"""

from __future__ import annotations

__all__ = ["MEDIAN", "MEAN", "SUM", "REJECT_NONE", "REJECT_SIGCLIP", "REJECT_MINMAX",
           "REJECT_PCLIP", "REJECT_WINSOR", "REJECT_CCDCLIP", "CENTRE_MEDIAN", "CENTRE_MEAN",
           "SPREAD_MAD", "SPREAD_STD", "SPREAD_POOLED", "POOL_WIDTH"]

# Estimators.
MEDIAN = 0
MEAN = 1
SUM = 2
# Rejections.
REJECT_NONE = 0
REJECT_SIGCLIP = 1
REJECT_MINMAX = 2
REJECT_PCLIP = 3
REJECT_WINSOR = 4
REJECT_CCDCLIP = 5
# Centres and spreads for clipping.
CENTRE_MEDIAN = 0
CENTRE_MEAN = 1
SPREAD_MAD = 0
SPREAD_STD = 1
SPREAD_POOLED = 2
POOL_WIDTH = 32
"""Columns per row segment whose per-pixel noise is pooled for ``SPREAD_POOLED`` (a row's last
segment also takes the columns left over: 32 to 63 of them)."""
