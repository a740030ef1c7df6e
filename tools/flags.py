"""Argument types shared by the ``tcc`` commands."""

from __future__ import annotations

import argparse

__all__ = ["MAX_SIZE", "bounded_int"]

#: The largest batch, sequence or dimension a flag accepts (2**31 - 1): sizes
#: are multiplied together (elements, bytes, MACs) in 64-bit arithmetic by
#: numpy, ONNX and the simulators, so each factor must stay far below 2**63.
MAX_SIZE = 2**31 - 1


def bounded_int(low: int = 1, high: int = MAX_SIZE):
    """An argparse ``type`` for an integer flag within ``low..high``."""

    def parse(text: str) -> int:
        digits = text.strip().lstrip("+-")
        if not digits.isdigit():
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        if len(digits.lstrip("0")) > len(str(max(abs(low), abs(high)))):
            value = None
        else:
            value = int(text)
        if value is None or not low <= value <= high:
            shown = text if len(text) <= 24 else f"{text[:12]}... ({len(digits)} digits)"
            raise argparse.ArgumentTypeError(f"{shown} is out of range; accepted: "
                                             f"{low}..{high}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse
