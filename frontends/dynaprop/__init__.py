"""DynaProp: prune activations and gradients at run time (|x| ≤ τ becomes 0).

Importing this package does not import torch.  The torch-free parts are the
counts (:mod:`frontends.dynaprop.statistics`) and the density profile format
(:mod:`frontends.dynaprop.profile`); the torch parts load on first use:

* :class:`DynaProp`, :func:`find_prune_points`, :func:`prune_tensor`
  (:mod:`frontends.dynaprop.runtime`): hooks that prune and count;
* :func:`calibrate_thresholds`, :func:`measure_sparsity`
  (:mod:`frontends.dynaprop.calibration`): τ from a target sparsity;
* :func:`run_study` (:mod:`frontends.dynaprop.study`): train a grid of
  (τ_I, τ_T) settings and report accuracy against sparsity;
* :func:`measure_profile` (:mod:`frontends.dynaprop.profiling`): a density
  profile of a zoo classifier on task data.

See docs/dynaprop.md for the prune points, the naming and the profile schema.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from frontends.dynaprop.statistics import Density, DynaPropStatistics, PointStatistics

if TYPE_CHECKING:  # pragma: no cover
    from frontends.dynaprop.calibration import (
        Calibration,
        SparsityReport,
        calibrate_thresholds,
        measure_sparsity,
    )
    from frontends.dynaprop.profile import (
        PROFILE_FORMAT,
        PROFILE_VERSION,
        read_profile,
        validate_profile,
        write_profile,
    )
    from frontends.dynaprop.profiling import measure_profile
    from frontends.dynaprop.runtime import DynaProp, PrunePointInfo, find_prune_points, prune_tensor
    from frontends.dynaprop.study import StudyResult, run_study

__all__ = [
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "Calibration",
    "Density",
    "DynaProp",
    "DynaPropStatistics",
    "PointStatistics",
    "PrunePointInfo",
    "SparsityReport",
    "StudyResult",
    "calibrate_thresholds",
    "find_prune_points",
    "measure_profile",
    "measure_sparsity",
    "prune_tensor",
    "read_profile",
    "run_study",
    "validate_profile",
    "write_profile",
]

_LAZY: dict[str, str] = {
    "DynaProp": "runtime",
    "PrunePointInfo": "runtime",
    "find_prune_points": "runtime",
    "prune_tensor": "runtime",
    "Calibration": "calibration",
    "SparsityReport": "calibration",
    "calibrate_thresholds": "calibration",
    "measure_sparsity": "calibration",
    "PROFILE_FORMAT": "profile",
    "PROFILE_VERSION": "profile",
    "read_profile": "profile",
    "validate_profile": "profile",
    "write_profile": "profile",
    "measure_profile": "profiling",
    "StudyResult": "study",
    "run_study": "study",
}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (torch only if it needs it)."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"frontends.dynaprop.{module_name}")
    return getattr(module, name)
