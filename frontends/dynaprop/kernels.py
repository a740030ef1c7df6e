"""Prune-and-count kernels: one pass over a tensor instead of three (torch).

The runtime's work per prune point is elementwise: zero ``|x| ≤ τ`` and count
the nonzeros.  In eager torch that is ``hardshrink`` plus a counting reduction
(``count_nonzero`` is slow on CPU; ``sign().abs().sum()`` is three passes), and
on a CPU each pass over an activation costs about as much as a tenth of a
BERT-Tiny training step.  This module fuses them:

* ``native`` backend: three tiny C loops (below), compiled once with the
  system C compiler (``$CC`` or ``cc``; ``-O3 -march=native``, no fast-math so
  NaN and signed-zero rules are IEEE) into a private per-user cache
  (``dynaprop-native/`` under ``$TRANSCODE_CACHE_DIR`` or ``~/.cache/transcode``,
  mode 0700), verified before it is loaded (a manifest records the hash of the
  source, flags, compiler and CPU, and the SHA-256 of the built file; a file
  that does not match is rebuilt, never loaded) and called through
  ctypes on float32 CPU tensors that are dense (contiguous, or a permutation
  of contiguous such as a transposed gradient);
* ``torch`` backend: ``hardshrink``, ``masked_fill`` and ``count_nonzero``, used for every other tensor (CUDA, other dtypes,
  overlapping strides) and whenever the native library cannot be built.
  Counts stay on the tensor's device.

Both backends give bit-identical tensors: a pruned element is ``+0.0``, a
kept one is copied; ``|x| ≤ τ`` is evaluated in float32 with τ rounded to
float32 (as ``hardshrink`` does); NaN is never pruned and counts as nonzero.
``TRANSCODE_DYNAPROP_BACKEND=torch`` forces the torch backend.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "BACKENDS",
    "Count",
    "count_nonzero",
    "keep_freed_memory",
    "mask_gradient",
    "native_available",
    "prune",
    "prune_gradient",
    "resolve_backend",
]

BACKENDS = ("auto", "native", "torch")

#: A nonzero count: a Python int (native backend) or an int64 scalar tensor on the device.
Count = int | torch.Tensor

_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

/* Number of nonzero elements of x[0..n). */
int64_t tc_count_nonzero(const float *restrict x, int64_t n) {
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) zeros += (x[i] == 0.0f);
    return n - zeros;
}

/* y = (|x| <= tau) ? +0 : x; returns the nonzeros of y. */
int64_t tc_prune(const float *restrict x, float *restrict y, int64_t n, float tau) {
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        int pruned = fabsf(v) <= tau;
        y[i] = pruned ? 0.0f : v;
        zeros += (y[i] == 0.0f);
    }
    return n - zeros;
}

/* out = (y == 0 || |g| <= tau) ? +0 : g, the gradient of a pruned point
   (y: its pruned forward output, zero exactly where the forward pass pruned
   when tau_i > 0) after tau_t pruning; returns the nonzeros of out. */
int64_t tc_prune_masked(const float *restrict g, const float *restrict y, float *restrict out,
                        int64_t n, float tau) {
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) {
        float v = g[i];
        int pruned = (y[i] == 0.0f) | (fabsf(v) <= tau);
        out[i] = pruned ? 0.0f : v;
        zeros += (out[i] == 0.0f);
    }
    return n - zeros;
}
"""

_FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c99")

_library: ctypes.CDLL | None = None
_library_error: str | None = None
_library_lock = threading.Lock()


def _cache_dir() -> Path:
    configured = os.environ.get("TRANSCODE_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "transcode"


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        models = sorted({line for line in text.splitlines()
                         if line.startswith(("model name", "flags"))})
        return "\n".join(models)
    except OSError:
        return platform.processor()


def _private_dir() -> Path:
    """``<cache>/dynaprop-native``: a directory only this user can write.

    Created with mode 0700; an existing one must be owned by this user (its
    mode is tightened to 0700 if it is not).  A directory someone else owns,
    or a symlink, is refused: then the library is built into a fresh
    temporary directory for this process only.
    """
    directory = _cache_dir() / "dynaprop-native"
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{directory} is not a directory owned by this user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    return directory


def _build_key(compiler: str) -> tuple[str, dict[str, str]]:
    """The key of a build (a hash of everything the library depends on) and its parts."""
    parts = {
        "source_sha256": hashlib.sha256(_C_SOURCE.encode()).hexdigest(),
        "flags": " ".join(_FLAGS),
        "compiler": compiler,
        "machine": platform.machine(),
        "cpu_sha256": hashlib.sha256(_cpu_signature().encode()).hexdigest(),
    }
    key = hashlib.sha256("\0".join(f"{k}={v}" for k, v in sorted(parts.items())).encode())
    return key.hexdigest()[:24], parts


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(target: Path, manifest: Path, key: str, parts: dict[str, str]) -> bool:
    """Whether ``target`` is the library this process built for ``key``: its manifest
    (written at build time) names the same key, source hash and flags, and the file's
    SHA-256 is the one recorded.  Anything else -- a file planted without a manifest,
    a truncated or replaced library, another source or flags -- is not loaded."""
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        if not isinstance(recorded, dict):
            return False
        info = os.lstat(target)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return False
        return (recorded.get("key") == key
                and all(recorded.get(name) == value for name, value in parts.items())
                and recorded.get("library_sha256") == _file_sha256(target))
    except (OSError, ValueError):
        return False


def _compile(compiler: str, directory: Path, name: str) -> Path:
    """Compile the kernels into a scratch directory inside ``directory``; returns the file."""
    scratch = Path(tempfile.mkdtemp(dir=directory))
    source = scratch / "dynaprop_kernels.c"
    source.write_text(_C_SOURCE, encoding="utf-8")
    built = scratch / name
    subprocess.run(
        [compiler, *_FLAGS, "-o", str(built), str(source), "-lm"],
        check=True, capture_output=True, timeout=120,
    )
    return built


def _build() -> ctypes.CDLL:
    """Build (or reuse a verified build of) the kernels and load them.

    The library lives in a private cache directory (:func:`_private_dir`) as
    ``dynaprop_kernels_<key>.so`` with a manifest ``<same>.json`` recording the
    key (a hash of the C source, the compiler flags, the compiler, the machine
    and the CPU), the parts of the key and the SHA-256 of the built file.  A
    library is loaded only if the manifest matches and the file hashes to the
    recorded value (:func:`_verified`); otherwise it is rebuilt, and the
    manifest is written after the library is in place.  If no private
    directory can be had, the build goes to a temporary directory used by
    this process alone.
    """
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler (set CC)")
    key, parts = _build_key(compiler)
    name = f"dynaprop_kernels_{key}.so"
    try:
        directory = _private_dir()
    except OSError:
        directory = None
    if directory is None:
        scratch = Path(tempfile.mkdtemp(prefix="transcode-dynaprop-"))
        target = _compile(compiler, scratch, name)
    else:
        target = directory / name
        manifest = directory / f"dynaprop_kernels_{key}.json"
        if not _verified(target, manifest, key, parts):
            built = _compile(compiler, directory, name)
            digest = _file_sha256(built)
            manifest_tmp = built.with_suffix(".json")
            manifest_tmp.write_text(json.dumps({"key": key, **parts, "library_sha256": digest},
                                               indent=1), encoding="utf-8")
            os.replace(built, target)            # atomic: concurrent builders agree
            os.replace(manifest_tmp, manifest)
            shutil.rmtree(built.parent, ignore_errors=True)
            if not _verified(target, manifest, key, parts):  # a concurrent build won the race
                raise OSError(f"{target}: the freshly built library does not verify")
    library = ctypes.CDLL(str(target))
    library.tc_count_nonzero.restype = ctypes.c_int64
    library.tc_count_nonzero.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    library.tc_prune.restype = ctypes.c_int64
    library.tc_prune.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float]
    library.tc_prune_masked.restype = ctypes.c_int64
    library.tc_prune_masked.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    ]
    return library


def _native() -> ctypes.CDLL | None:
    global _library, _library_error
    if _library is not None or _library_error is not None:
        return _library
    with _library_lock:
        if _library is None and _library_error is None:
            try:
                _library = _build()
            except (OSError, subprocess.SubprocessError) as err:
                detail = getattr(err, "stderr", b"") or b""
                _library_error = f"{err} {detail.decode(errors='replace')[:500]}".strip()
    return _library


def native_available() -> tuple[bool, str]:
    """Whether the native kernels can be used, and why not."""
    if os.environ.get("TRANSCODE_DYNAPROP_BACKEND", "").strip().lower() == "torch":
        return False, "TRANSCODE_DYNAPROP_BACKEND=torch"
    library = _native()
    return library is not None, _library_error or ""


def resolve_backend(backend: str) -> str:
    """``"auto"`` → ``"native"`` when the kernels build, else ``"torch"``."""
    if backend not in BACKENDS:
        from transcode_ir.errors import UserError

        raise UserError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    available, reason = native_available()
    if available:
        return "native"
    if backend == "native":
        raise RuntimeError(f"the native DynaProp kernels are not available: {reason}")
    return "torch"


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    Every pruned tensor is a fresh allocation; with glibc's defaults a large
    freed block often goes back to the kernel and the next one page-faults in
    again, which on a CPU costs about as much as the pruning itself.  This
    sets ``M_MMAP_THRESHOLD`` to 32 MiB (blocks up to that come from the heap),
    ``M_TRIM_THRESHOLD`` to 1 GiB and ``M_TOP_PAD`` to 64 MiB, the same as the
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_TOP_PAD_``
    environment variables.  Process-wide, so the runtime never calls it: the
    ``tcc dynaprop`` commands and the benchmark do.  Returns whether it applied
    (Linux with glibc only).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    ok &= mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    ok &= mallopt(_M_TOP_PAD, 64 * 1024 * 1024)
    return bool(ok)


def _dense(tensor: torch.Tensor) -> bool:
    """Non-overlapping and dense: a permutation of a contiguous layout."""
    if tensor.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted(
        (stride, size) for size, stride in zip(tensor.shape, tensor.stride()) if size != 1
    ):
        if stride != expected:
            return False
        expected *= size
    return True


def _native_ok(*tensors: torch.Tensor) -> bool:
    first = tensors[0]
    return all(
        t.device.type == "cpu" and t.dtype == torch.float32 and _dense(t)
        and t.stride() == first.stride() and t.shape == first.shape
        for t in tensors
    )


def _torch_count(tensor: torch.Tensor) -> torch.Tensor:
    """Nonzeros as an int64 scalar on the tensor's device (NaN counts as nonzero)."""
    return torch.count_nonzero(tensor)


def count_nonzero(tensor: torch.Tensor, native: bool) -> Count:
    """Nonzero elements of ``tensor`` (an int, or an int64 tensor on its device)."""
    if native and _library is not None and _native_ok(tensor):
        return int(_library.tc_count_nonzero(tensor.data_ptr(), tensor.numel()))
    return _torch_count(tensor)


def prune(
    tensor: torch.Tensor, tau: float, native: bool, count: bool = True
) -> tuple[torch.Tensor, Count | None]:
    """``(x with |x| ≤ tau zeroed, its nonzeros or None)``; no autograd (see the runtime)."""
    if native and _library is not None and _native_ok(tensor):
        out = torch.empty_like(tensor)
        nonzeros = _library.tc_prune(tensor.data_ptr(), out.data_ptr(), tensor.numel(), tau)
        return out, int(nonzeros)
    out = F.hardshrink(tensor, tau)
    return out, _torch_count(out) if count else None


def prune_gradient(
    gradient: torch.Tensor,
    pruned_output: torch.Tensor | None,
    tau: float,
    native: bool,
    count: bool = True,
) -> tuple[torch.Tensor, Count | None]:
    """The gradient zeroed where ``pruned_output == 0`` (if given) or ``|g| ≤ tau``; its nonzeros.

    With neither a mask nor ``tau > 0`` the gradient itself is returned.
    """
    if pruned_output is None and tau == 0.0:
        return gradient, count_nonzero(gradient, native) if count else None
    if native and _library is not None:
        if pruned_output is None:
            if _native_ok(gradient):
                out = torch.empty_like(gradient)
                nonzeros = _library.tc_prune(gradient.data_ptr(), out.data_ptr(),
                                             gradient.numel(), tau)
                return out, int(nonzeros)
        else:
            if (pruned_output.is_contiguous() and not gradient.is_contiguous()
                    and _native_ok(pruned_output)):
                # e.g. the gradient of a key arrives transposed: one copy beats the torch path
                gradient = gradient.contiguous()
            if not _native_ok(gradient, pruned_output):
                return _torch_prune_gradient(gradient, pruned_output, tau, count)
            out = torch.empty_like(gradient)
            nonzeros = _library.tc_prune_masked(
                gradient.data_ptr(), pruned_output.data_ptr(), out.data_ptr(),
                gradient.numel(), tau,
            )
            return out, int(nonzeros)
    return _torch_prune_gradient(gradient, pruned_output, tau, count)


def mask_gradient(gradient: torch.Tensor, pruned_output: torch.Tensor) -> torch.Tensor:
    """The derivative of forward pruning: ``gradient`` zeroed where ``pruned_output == 0``.

    (Not ``hardshrink_backward``: its vectorised CPU path zeroes the gradient
    at NaN inputs, its scalar path does not; a NaN is never pruned, so its
    gradient passes.)
    """
    return gradient.masked_fill(pruned_output == 0, 0.0)


def _torch_prune_gradient(
    gradient: torch.Tensor, pruned_output: torch.Tensor | None, tau: float, count: bool
) -> tuple[torch.Tensor, Count | None]:
    out = gradient if pruned_output is None else mask_gradient(gradient, pruned_output)
    if tau > 0.0:
        out = F.hardshrink(out, tau)
    return out, _torch_count(out) if count else None
