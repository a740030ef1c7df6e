"""The built-in dialects: every op kind of TransCODE's IR, outside the core.

Each module defines the op kinds of one family with
:func:`transcode_ir.opdefs.define` when it is imported:

* :mod:`dialects.tensor` -- matrix products, data movement, reductions,
  constants, parameters, ``func.return``;
* :mod:`dialects.arith` -- elementwise arithmetic, comparisons, casts;
* :mod:`dialects.nn` -- activations, softmax, layer norm, conv1d;
* :mod:`dialects.fused` -- ``nn.linear`` and ``nn.attention``, made by the fuse pass;
* :mod:`dialects.grad` -- backward kernels (``grad.*``) the gradient rules emit;
* :mod:`dialects.training` -- losses (and their backward kernels) and optimizer updates;
* :mod:`dialects.sparsity` -- DynaProp's ``nn.prune`` and ``grad.prune``.

The core's registry (:func:`transcode_ir.opdefs.get_opdef`) imports this
package by name on its first lookup, so nothing needs to import it by hand;
other packages add dialects through the entry-point group
``transcode.dialects`` (see ``docs/ir.md``).  Dialects import the core and
each other, never a layer above (passes, frontends, backends, tools).
"""

from __future__ import annotations

import importlib

#: The built-in dialect modules, in the order they register.
MODULES = ("dialects.arith", "dialects.nn", "dialects.tensor", "dialects.fused",
           "dialects.training", "dialects.grad", "dialects.sparsity")

for _module in MODULES:
    importlib.import_module(_module)
