"""Target-independent passes, one file per pass or small family.

Importing this package registers every built-in pass and the named
pipelines in the registry of :mod:`transcode_ir.passes` (which imports it
lazily on first use, so ``parse_pipeline("cse")`` works without importing
this package first).

Passes
  ``canonicalize``    algebraic identities and view clean-ups; raises the
                      exporters' decomposed GELU and layer norm (canonicalize.py,
                      raise_ops.py)
  ``raise-ops``       only the raising patterns (raise_ops.py)
  ``fold-constants``  evaluates ops whose operands are all constant (fold_constants.py)
  ``cse``             common-subexpression elimination (cse.py)
  ``dce``             dead-code elimination (dce.py)
  ``fuse``            matmul+bias(+activation) -> nn.linear; attention -> nn.attention (fuse.py)
  ``autodiff``        builds @backward and @train_step (autodiff.py)

Other modules here (``tile``, ``dynaprop``, ...) register their own passes
the same way; this file imports every module of the package.

Named pipelines
  ``cleanup``   canonicalize,fold-constants,canonicalize,cse,dce
  ``default``   cleanup, then fuse and dce
  ``training``  cleanup, autodiff (cross-entropy, Adam), cleanup again, then fuse:
                differentiating before fusing lets the backward pass read the
                saved pre-activations and probabilities instead of recomputing them.
"""

from __future__ import annotations

import importlib
import pkgutil

from transcode_ir.defaults import training_pipeline
from transcode_ir.passes import register_pipeline

# Every module of this package registers its passes when imported (as
# tools/commands does for subcommands), so a pass added here -- by whoever
# writes it -- is available to pipelines without editing this file.
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

CLEANUP = "canonicalize,fold-constants,canonicalize,cse,dce"
DEFAULT = "cleanup,fuse,dce"
TRAINING = training_pipeline()          # transcode_ir/defaults.py: defined once

register_pipeline("cleanup", CLEANUP, "clean-up passes: canonicalize, fold constants, CSE, DCE")
register_pipeline("default", DEFAULT, "clean-up, then fusion (inference)")
register_pipeline("training", TRAINING,
                  "clean-up, autodiff with cross-entropy and Adam, then fusion")

__all__ = ["CLEANUP", "DEFAULT", "TRAINING"]
