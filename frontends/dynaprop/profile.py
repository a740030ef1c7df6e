"""DynaProp density profiles: JSON from prune-point module path to measured density (no torch).

A profile records what the torch runtime measured on real inputs, so that the
IR's DynaProp pass and the cost model use measured densities instead of the
fixed ones of the original (activations 0.5, gradients 0.1).  Keys of
``points`` are module paths of :func:`frontends.zoo.build_model` (the encoder
prefix of a classifier, ``bert.``, is removed and kept in ``module_prefix``),
which are the ``loc`` the ONNX importer gives each op.  The schema (version
:data:`PROFILE_VERSION`) is documented in docs/dynaprop.md; :func:`read_profile`
checks it and raises :class:`UserError` naming the field that is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from frontends.dynaprop.statistics import Density, DynaPropStatistics, combine
from transcode_ir.errors import UserError

__all__ = [
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "build_profile",
    "profile_densities",
    "read_profile",
    "validate_profile",
    "write_profile",
]

PROFILE_FORMAT = "transcode.dynaprop-profile"
PROFILE_VERSION = 1
MODES = ("inference", "training")


def _strip(path: str, prefix: str) -> str:
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def _density_json(density: Density | None) -> dict[str, Any] | None:
    return None if density is None else density.to_json()


def build_profile(
    statistics: DynaPropStatistics,
    *,
    model: str,
    seed: int,
    mode: str,
    tau_i: float | Mapping[str, float],
    tau_t: float | Mapping[str, float],
    data: Mapping[str, Any],
    module_prefix: str = "",
    description: str | None = None,
    calibration: Mapping[str, Any] | None = None,
    tool: str | None = None,
) -> dict[str, Any]:
    """The profile document (a JSON-ready dict) for counts measured by a runtime."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    points: dict[str, Any] = {}
    for path, point in statistics.points.items():
        points[_strip(path, module_prefix)] = {
            "role": point.role,
            "layer": point.layer,
            "label": point.label,
            "tau_i": point.tau_i,
            "tau_t": point.tau_t,
            "forward": _density_json(point.forward),
            "backward": _density_json(point.backward),
        }
    weight_gradients = {
        _strip(name, module_prefix): density.to_json()
        for name, density in statistics.weight_gradients.items()
    }
    backward = [point.backward for point in statistics.points.values()]
    totals = {
        "forward": combine(point.forward for point in statistics.points.values()).to_json(),
        "backward": combine(backward).to_json() if any(b is not None for b in backward) else None,
        "weight_gradients": (
            statistics.weight_gradient.to_json() if statistics.weight_gradients else None
        ),
    }
    per_point_i = isinstance(tau_i, Mapping)
    per_point_t = isinstance(tau_t, Mapping)
    return {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "model": model,
        "description": description,
        "seed": seed,
        "mode": mode,
        "thresholds": {
            "tau_i": None if per_point_i else float(tau_i),  # type: ignore[arg-type]
            "tau_t": None if per_point_t else float(tau_t),  # type: ignore[arg-type]
            "per_point": per_point_i or per_point_t,
        },
        "calibration": dict(calibration) if calibration is not None else None,
        "data": dict(data),
        "module_prefix": module_prefix,
        "points": points,
        "weight_gradients": weight_gradients,
        "totals": totals,
        "tool": tool,
    }


def write_profile(profile: Mapping[str, Any], path: str | Path) -> Path:
    """Check ``profile`` and write it as indented JSON; returns the path."""
    validate_profile(profile, str(path))
    from transcode_ir.fileio import is_stdio, write_text

    target = Path(path)
    if not is_stdio(path) and target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    return write_text(target, json.dumps(profile, indent=2) + "\n")   # atomic; '-' = stdout


def read_profile(path: str | Path) -> dict[str, Any]:
    """Read and check a profile (a :class:`UserError` names the file and the bad field)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{source}: cannot read the DynaProp profile: {err.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{source}:{err.lineno}:{err.colno}: not JSON: {err.msg}"
        ) from None
    return validate_profile(document, source)


def profile_densities(profile: Mapping[str, Any], direction: str = "forward") -> dict[str, float]:
    """``{module path: density}`` for ``"forward"`` or ``"backward"`` (points without it are left out)."""
    if direction not in ("forward", "backward"):
        raise UserError(f"direction: expected 'forward' or 'backward', got {direction!r}")
    return {
        path: entry[direction]["density"]
        for path, entry in profile["points"].items()
        if entry.get(direction) is not None
    }


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _fail(source: str, where: str, message: str) -> UserError:
    return UserError(f"{source}: DynaProp profile field {where}: {message}")


def _require(document: Mapping[str, Any], key: str, kinds: tuple[type, ...], source: str,
             where: str = "", optional: bool = False) -> Any:
    label = f"{where}.{key}" if where else key
    if key not in document:
        raise _fail(source, label, "missing")
    value = document[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(source, label, f"expected {_kind_names(kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise _fail(source, label, f"expected {_kind_names(kinds)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object",
             bool: "true/false", list: "a list"}
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def _check_density(value: Any, source: str, where: str) -> None:
    if not isinstance(value, dict):
        raise _fail(source, where, "expected an object {elements, zeros, density}")
    elements = _require(value, "elements", (int,), source, where)
    zeros = _require(value, "zeros", (int,), source, where)
    density = _require(value, "density", (int, float), source, where)
    if elements < 0 or not 0 <= zeros <= elements:
        raise _fail(source, where, f"zeros {zeros} must lie in [0, elements = {elements}]")
    expected = (elements - zeros) / elements if elements else 1.0
    if not math.isclose(density, expected, rel_tol=0, abs_tol=1e-9):
        raise _fail(
            source, f"{where}.density",
            f"{density!r} disagrees with (elements - zeros) / elements = {expected!r}",
        )


def _check_threshold(value: Any, source: str, where: str, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise _fail(source, where, f"expected a finite number >= 0, got {value!r}")


def validate_profile(document: Any, source: str = "<profile>") -> dict[str, Any]:
    """Check a profile document against version :data:`PROFILE_VERSION`; returns it."""
    if not isinstance(document, dict):
        raise UserError(f"{source}: a DynaProp profile is a JSON object")
    fmt = document.get("format")
    if fmt != PROFILE_FORMAT:
        raise _fail(source, "format", f"expected {PROFILE_FORMAT!r}, got {fmt!r}")
    version = _require(document, "version", (int,), source)
    if version != PROFILE_VERSION:
        raise _fail(
            source, "version",
            f"this toolkit reads version {PROFILE_VERSION}, the file is version {version}",
        )
    _require(document, "model", (str,), source)
    _require(document, "description", (str,), source, optional=True)
    _require(document, "seed", (int,), source)
    mode = _require(document, "mode", (str,), source)
    if mode not in MODES:
        raise _fail(source, "mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    thresholds = _require(document, "thresholds", (dict,), source)
    _check_threshold(thresholds.get("tau_i"), source, "thresholds.tau_i", optional=True)
    _check_threshold(thresholds.get("tau_t"), source, "thresholds.tau_t", optional=True)
    _require(thresholds, "per_point", (bool,), source, "thresholds")
    _require(document, "calibration", (dict,), source, optional=True)
    data = _require(document, "data", (dict,), source)
    _require(data, "task", (str,), source, "data")
    batches = _require(data, "batches", (int,), source, "data")
    if batches < 1:
        raise _fail(source, "data.batches", f"expected an integer >= 1, got {batches}")
    _require(document, "module_prefix", (str,), source)
    points = _require(document, "points", (dict,), source)
    if not points:
        raise _fail(source, "points", "no prune points")
    for path, entry in points.items():
        where = f"points[{path!r}]"
        if not isinstance(entry, dict):
            raise _fail(source, where, "expected an object")
        _require(entry, "role", (str,), source, where)
        _require(entry, "layer", (int,), source, where, optional=True)
        _check_threshold(entry.get("tau_i"), source, f"{where}.tau_i", optional=False)
        _check_threshold(entry.get("tau_t"), source, f"{where}.tau_t", optional=False)
        forward = _require(entry, "forward", (dict,), source, where, optional=True)
        if forward is not None:
            _check_density(forward, source, f"{where}.forward")
        backward = _require(entry, "backward", (dict,), source, where, optional=True)
        if backward is not None:
            _check_density(backward, source, f"{where}.backward")
        if mode == "inference" and backward is not None:
            raise _fail(source, f"{where}.backward", "an inference profile has no backward counts")
    gradients = _require(document, "weight_gradients", (dict,), source)
    for name, density in gradients.items():
        _check_density(density, source, f"weight_gradients[{name!r}]")
    totals = _require(document, "totals", (dict,), source)
    for key in ("forward", "backward", "weight_gradients"):
        value = _require(totals, key, (dict,), source, "totals", optional=True)
        if value is not None:
            _check_density(value, source, f"totals.{key}")
    _require(document, "tool", (str,), source, optional=True)
    return document
