"""The native DynaProp kernels are built into a private cache and verified before loading."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

kernels = pytest.importorskip("frontends.dynaprop.kernels")

pytestmark = pytest.mark.skipif(
    (shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")) is None,
    reason="no C compiler for the native kernels")


def _files(cache: Path) -> tuple[Path, Path]:
    directory = cache / "dynaprop-native"
    (library,) = directory.glob("dynaprop_kernels_*.so")
    return library, library.with_suffix(".json")


def _works(library) -> bool:  # noqa: ANN001
    import torch

    x = torch.tensor([0.5, -0.01, 0.0, 2.0])
    out = torch.empty_like(x)
    nonzeros = library.tc_prune(x.data_ptr(), out.data_ptr(), 4, 0.1)
    return nonzeros == 2 and out.tolist() == [0.5, 0.0, 0.0, 2.0]


def test_build_is_private_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSCODE_CACHE_DIR", str(tmp_path))
    assert _works(kernels._build())
    library, manifest = _files(tmp_path)
    assert stat.S_IMODE(os.stat(library.parent).st_mode) == 0o700
    recorded = json.loads(manifest.read_text())
    assert recorded["library_sha256"] == kernels._file_sha256(library)
    assert recorded["flags"] == " ".join(kernels._FLAGS)
    assert recorded["key"] in library.name
    mtime = library.stat().st_mtime_ns
    assert _works(kernels._build())                   # verified: reused, not rebuilt
    assert library.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("forge_manifest", [False, True])
def test_a_planted_library_is_rebuilt_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 forge_manifest: bool) -> None:
    monkeypatch.setenv("TRANSCODE_CACHE_DIR", str(tmp_path))
    kernels._build()
    library, manifest = _files(tmp_path)
    good = kernels._file_sha256(library)
    library.unlink()
    library.write_bytes(b"not the kernels: loading this would fail or run foreign code")
    if forge_manifest:   # a manifest naming the right key but not this file's hash
        recorded = json.loads(manifest.read_text())
        manifest.write_text(json.dumps(recorded | {"library_sha256": "0" * 64}))
    else:
        manifest.unlink()
    assert _works(kernels._build())
    assert kernels._file_sha256(library) == json.loads(manifest.read_text())["library_sha256"]
    assert kernels._file_sha256(library) == good or library.stat().st_size > 1000


def test_a_library_for_other_flags_is_not_loaded(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSCODE_CACHE_DIR", str(tmp_path))
    kernels._build()
    library, manifest = _files(tmp_path)
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(recorded | {"flags": "-O0"}))
    before = library.stat().st_mtime_ns
    assert _works(kernels._build())
    assert json.loads(manifest.read_text())["flags"] == " ".join(kernels._FLAGS)
    assert library.stat().st_mtime_ns != before


def test_a_cache_that_is_not_private_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "dynaprop-native").symlink_to(elsewhere)
    monkeypatch.setenv("TRANSCODE_CACHE_DIR", str(cache))
    assert _works(kernels._build())                   # built in a temporary directory instead
    assert not list(elsewhere.iterdir())
