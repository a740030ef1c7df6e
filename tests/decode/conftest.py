"""Fixtures of the decoder (KV cache) tests: prefill and decode-step graphs of
small decoders (2 layers, hidden 64), exported once per test run into a
folder every xdist worker of the run shares (``run_folder`` in
tests/conftest.py; a lock per model, so no export is made twice), named with a
key that hashes what the export depends on (frontends/hf/kv_cache.py,
families.py, torch and transformers versions).  A fresh export of one model
costs about 5 s of CPU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import locked, run_folder


def export_key(name: str) -> str:
    from importlib.metadata import version

    import frontends.hf

    root = Path(frontends.hf.__file__).parent
    digest = hashlib.sha256(f"{name} torch {version('torch')} transformers "
                            f"{version('transformers')} onnx {version('onnx')}".encode())
    for source in ("kv_cache.py", "families.py"):
        digest.update((root / source).read_bytes())
    return digest.hexdigest()[:16]


class DecoderExports:
    """``paths(name)`` -> (prefill.onnx, decode.onnx), exported at most once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def paths(self, name: str) -> tuple[Path, Path]:
        folder = self.folder / f"{name}-{export_key(name)}"
        prefill, decode = folder / f"{name}-prefill.onnx", folder / f"{name}-decode.onnx"
        with locked(self.folder / f"{folder.name}.lock"):   # another worker may be exporting
            if not (prefill.exists() and decode.exists()):
                from frontends.hf.kv_cache import export_decoder

                export_decoder(name, folder)
        return prefill, decode


@pytest.fixture(scope="session")
def decoders(tmp_path_factory: pytest.TempPathFactory) -> DecoderExports:
    return DecoderExports(run_folder(tmp_path_factory, "decode-exports"))
