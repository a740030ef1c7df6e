"""``tile``: which ops it tiles (the Contraction trait) and how it clamps."""

from __future__ import annotations

import numpy as np

from transcode_ir import Builder, Function, Module, PassManager, TensorType, parse_pipeline


def test_convolutions_are_tiled_and_clamped_by_their_im2col_dims() -> None:
    m = Module("m")
    m.add_param("w", np.ones((8, 4, 3), np.float32))          # 8 filters, 4 channels, width 3
    f = m.add_function(Function("forward", [TensorType((1, 4, 10))], ["x"], ["y"]))
    b = Builder(f)
    y = b.op("nn.conv1d", f.args[0], b.param("w"))
    f.set_outputs([b.op("arith.exp", y)], ["y"])
    PassManager(parse_pipeline("tile{x=64,y=64}")).run(m)
    conv, exp = (op for op in m["forward"] if op.name in ("nn.conv1d", "arith.exp"))
    # im2col by hand: L_out = 10 - 3 + 1 = 8; M = batch x L_out = 8, K = 4 x 3 = 12,
    # N = 8 filters; x is cut to M = 8 and y to max(K, N) = 12.
    assert (conv.attr("tile:b"), conv.attr("tile:x"), conv.attr("tile:y")) == (1, 8, 12)
    assert conv.attr("tile:order") == "bijk"
    assert exp.attr("tile:x") is None                            # no contraction, not tiled
