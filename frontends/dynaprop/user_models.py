"""DynaProp on a user's own model and data: an ONNX file or a Hugging Face model folder, with
a token file or a text file (``tcc dynaprop profile|study MODEL --tokens FILE | --text FILE``).

* **inputs** (:func:`read_sequences`): a *token file* is a text file with one sequence
  per line of whitespace- or comma-separated integer ids (``#`` starts a comment), or a
  ``.npy``/``.npz`` integer array ``[N, L]``; a *text file* has one example per line and
  needs a tokenizer (the model folder's own, or ``--tokenizer DIR``, loaded from disk
  only).  Sequences are cut or padded (pad id 0, or the tokenizer's) to the sequence
  length; the attention mask marks the real tokens.
* **ONNX file** (:func:`profile_onnx`): imported into the IR at ``[batch, length]``;
  the reference interpreter runs it on the sequences with the ``dynaprop`` pass's
  calibration, so the profile's points and densities are exactly what the pass measures.
* **Hugging Face folder** (:func:`profile_folder`): ``AutoModel.from_pretrained(folder,
  local_files_only=True)`` (never the hub), the torch runtime attached; the points are
  found by structure on the first batch.
* **study** (:func:`fidelity_study`): no labels come with a user's text, so the study of
  a user model measures, per τ_I, the activation sparsity and how far the pruned model's
  output moves from the unpruned one's (relative L2 error of the first output, and
  agreement of the arg-max over its last axis: next-token or hidden-unit agreement).

Both write profiles of schema version 1 (docs/dynaprop.md) keyed by the structural names
(``layer.<i>.<role>``) that the IR pass uses, so ``dynaprop{profile=...}`` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transcode_ir.errors import UserError

__all__ = ["ModelSource", "fidelity_study", "model_source", "profile_folder", "profile_onnx",
           "read_sequences"]


@dataclass(frozen=True)
class ModelSource:
    """What ``--model`` names: ``kind`` is ``onnx``, ``folder`` or ``zoo``."""

    kind: str
    path: Path | None
    name: str


def model_source(text: str) -> ModelSource:
    """Classify ``--model``: an existing ``.onnx`` file, a folder with ``config.json``, or
    a zoo name (checked by the caller)."""
    path = Path(text).expanduser()
    if path.suffix.lower() == ".onnx" or (path.exists() and path.is_file()):
        if not path.is_file():
            raise UserError(f"--model {text}: no such ONNX file")
        return ModelSource("onnx", path, path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"--model {text}: a folder, but not a Hugging Face model folder "
                            "(it has no config.json); accepted: a zoo name, an .onnx file or a "
                            "folder written by save_pretrained")
        return ModelSource("folder", path, path.name)
    return ModelSource("zoo", None, text)


# --------------------------------------------------------------------------- inputs


def _tokenizer(directory: Path) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover
        raise UserError("--text needs the transformers package for the tokenizer") from None
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"--text: no tokenizer could be loaded from {directory} ({err}); "
                        "give --tokenizer DIR (a folder with tokenizer files) or use "
                        "--tokens FILE with integer ids") from None


def read_sequences(tokens: str | None, text: str | None, length: int,
                   tokenizer_dir: Path | None = None, limit: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)``, int64 ``[N, length]``, from a token or text file."""
    if (tokens is None) == (text is None):
        raise UserError("give one of --tokens FILE (integer ids) or --text FILE (one example "
                        "per line)")
    if length < 1:
        raise UserError(f"--max-length: expected an integer >= 1, got {length}")
    pad = 0
    rows: list[list[int]] = []
    if tokens is not None:
        path = Path(tokens)
        if not path.is_file():
            raise UserError(f"--tokens {tokens}: no such file")
        if path.suffix in (".npy", ".npz"):
            try:
                loaded = np.load(path, allow_pickle=False)
                array = loaded[loaded.files[0]] if path.suffix == ".npz" else loaded
            except (ValueError, OSError, IndexError) as err:
                raise UserError(f"--tokens {tokens}: not a numpy integer array ({err})") from None
            if array.ndim == 1:
                array = array[None]
            if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
                raise UserError(f"--tokens {tokens}: expected integers of shape [N, L], got "
                                f"{array.dtype} {list(array.shape)}")
            rows = [list(map(int, row)) for row in array]
        else:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.split("#", 1)[0].replace(",", " ").strip()
                if not line:
                    continue
                try:
                    ids = [int(item) for item in line.split()]
                except ValueError:
                    raise UserError(f"--tokens {tokens}:{number}: expected integer token ids "
                                    f"separated by spaces or commas, got {line[:40]!r}; for "
                                    "plain text use --text") from None
                if any(i < 0 for i in ids):
                    raise UserError(f"--tokens {tokens}:{number}: negative token id")
                rows.append(ids)
    else:
        path = Path(text)  # type: ignore[arg-type]
        if not path.is_file():
            raise UserError(f"--text {text}: no such file")
        if tokenizer_dir is None:
            raise UserError("--text needs a tokenizer: the model folder's, or --tokenizer DIR "
                            "(an ONNX file has none); or give --tokens FILE")
        tok = _tokenizer(tokenizer_dir)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [tok(line, truncation=True, max_length=length)["input_ids"] for line in lines]
    rows = [row for row in rows if row]
    if not rows:
        raise UserError(f"{tokens or text}: no sequences in the file")
    if limit is not None:
        rows = rows[:limit]
    ids = np.full((len(rows), length), pad, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[:length]
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return ids, mask


def _batches(ids: np.ndarray, mask: np.ndarray, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole batches of ``batch`` rows (the last one filled up by repeating rows)."""
    count = -(-len(ids) // batch)
    order = np.resize(np.arange(len(ids)), count * batch)
    return [(ids[order[i:i + batch]], mask[order[i:i + batch]])
            for i in range(0, len(order), batch)]


# --------------------------------------------------------------------------- ONNX


def _onnx_inputs(path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _feeds(names: Sequence[str], ids: np.ndarray, mask: np.ndarray, where: str
           ) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    for name in names:
        if name == "input_ids":
            feeds[name] = ids
        elif name == "attention_mask":
            feeds[name] = mask
        elif name == "token_type_ids":
            feeds[name] = np.zeros_like(ids)
        elif name == "position_ids":
            feeds[name] = np.broadcast_to(np.arange(ids.shape[1]), ids.shape).astype(np.int64)
        else:
            raise UserError(f"{where}: the model takes an input {name!r}; token files feed "
                            "input_ids, attention_mask, token_type_ids (zeros) and position_ids "
                            "(0..L-1)")
    return feeds


def profile_onnx(path: Path, ids: np.ndarray, mask: np.ndarray, tau_i: float, batch: int,
                 scratch: Path) -> dict[str, Any]:
    """Densities of every prune point of the ONNX model on the sequences (the IR's
    interpreter; the pass's own measurement), as a profile's ``points``."""
    import passes.dynaprop  # noqa: F401  (registers the pass)
    from frontends.onnx import import_onnx
    from passes.dynaprop import prune_records
    from transcode_ir import run_pipeline

    names = _onnx_inputs(path)
    batches = _batches(ids, mask, batch)
    first = _feeds(names, *batches[0], str(path))
    module = import_onnx(path, {name: value.shape for name, value in first.items()})
    arrays = {name: np.stack([_feeds(names, *b, str(path))[name] for b in batches])
              for name in names}
    calibration = scratch / "inputs.npz"
    np.savez(calibration, **arrays)
    pruned = run_pipeline(module, f"cleanup,dynaprop{{tau-i={tau_i!r},"
                                  f"calibration={calibration}}}").module
    points: dict[str, Any] = {}
    for record in prune_records(pruned):
        if record.function != "forward":
            continue
        elements = record.elements * len(batches)
        density = float(record.density)
        zeros = int(round((1.0 - density) * elements))
        points[record.point] = {
            "role": record.point.split(".", 2)[2], "layer": int(record.point.split(".")[1]),
            "label": "", "tau_i": record.tau, "tau_t": 0.0,
            "forward": {"elements": elements, "zeros": zeros,
                        "density": (elements - zeros) / elements},
            "backward": None}
    return {"points": points, "examples": len(ids), "batches": len(batches)}


# --------------------------------------------------------------------------- HF folders


def load_folder(path: Path) -> Any:
    """The model in a ``save_pretrained`` folder, from disk only, in eval mode."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    except ImportError:  # pragma: no cover
        raise UserError("a Hugging Face model folder needs the transformers package") from None
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        causal = any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel")
                     for a in (config.architectures or []))
        loader = AutoModelForCausalLM if causal else AutoModel
        return loader.from_pretrained(str(path), local_files_only=True).eval()
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"--model {path}: cannot load the Hugging Face model from the folder "
                        f"({err})") from None


def _call(model: Any, ids: np.ndarray, mask: np.ndarray) -> Any:
    import torch

    return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))


def profile_folder(path: Path, ids: np.ndarray, mask: np.ndarray, tau_i: float,
                   batch: int) -> tuple[Any, str]:
    """``(DynaPropStatistics, model class name)`` of the folder's model on the sequences."""
    import torch

    from frontends.dynaprop.runtime import DynaProp

    model = load_folder(path)
    with DynaProp(model, tau_i) as runtime, torch.no_grad():
        for b_ids, b_mask in _batches(ids, mask, batch):
            _call(model, b_ids, b_mask)
        return runtime.statistics(), type(model).__name__


def _first_output(result: Any) -> np.ndarray:
    import torch

    if isinstance(result, torch.Tensor):
        return result.detach().float().numpy()
    if hasattr(result, "to_tuple"):
        result = result.to_tuple()
    for item in result:
        if isinstance(item, torch.Tensor):
            return item.detach().float().numpy()
    raise UserError("the model returned no tensor")


def fidelity_study(source: ModelSource, ids: np.ndarray, mask: np.ndarray,
                   taus: Sequence[float], batch: int) -> list[dict[str, float]]:
    """Per τ_I: activation sparsity, relative L2 error of the first output against τ = 0,
    and arg-max agreement over its last axis (real tokens only)."""
    batches = _batches(ids, mask, batch)
    outputs: dict[float, list[np.ndarray]] = {}
    sparsity: dict[float, float] = {}
    if source.kind == "folder":
        import torch

        from frontends.dynaprop.runtime import DynaProp

        model = load_folder(source.path)  # type: ignore[arg-type]
        for tau in [0.0, *[t for t in taus if t != 0.0]]:
            with DynaProp(model, tau) as runtime, torch.no_grad():
                outputs[tau] = [_first_output(_call(model, *b)) for b in batches]
                sparsity[tau] = runtime.statistics().activation_sparsity
    else:
        import passes.dynaprop  # noqa: F401
        from frontends.onnx import import_onnx
        from passes.dynaprop import prune_records
        from transcode_ir import Interpreter, run_pipeline

        names = _onnx_inputs(source.path)  # type: ignore[arg-type]
        feeds = [_feeds(names, *b, str(source.path)) for b in batches]
        module = import_onnx(source.path, {n: v.shape for n, v in feeds[0].items()})
        for tau in [0.0, *[t for t in taus if t != 0.0]]:
            # density=1.0 only to insert the prune ops; the study counts the zeros itself
            pruned = run_pipeline(module.clone(), f"cleanup,dynaprop{{tau-i={tau!r},"
                                                  "density=1.0}").module
            if not prune_records(pruned):
                raise UserError(f"{source.path}: no DynaProp prune points found")
            zeros = total = 0

            def observer(op: Any, results: list[np.ndarray]) -> None:
                nonlocal zeros, total
                if op.name == "nn.prune":
                    zeros += int(results[0].size - np.count_nonzero(results[0]))
                    total += int(results[0].size)

            counting = Interpreter(pruned, observer=observer)
            outputs[tau] = [np.asarray(counting.run("forward", f)[0], dtype=np.float32)
                            for f in feeds]
            sparsity[tau] = zeros / total if total else 0.0
    reference = outputs[0.0]
    rows = []
    for tau in taus:
        got = outputs[tau]
        num = sum(float(np.sum((g - r) ** 2)) for g, r in zip(got, reference))
        den = sum(float(np.sum(r ** 2)) for r in reference) or 1.0
        agree = total = 0
        for (b_ids, b_mask), g, r in zip(batches, got, reference):
            if g.ndim >= 2 and g.shape[:2] == b_ids.shape:
                same = g.argmax(-1) == r.argmax(-1)
                keep = b_mask.astype(bool)
                agree += int(same[keep].sum())
                total += int(keep.sum())
            else:
                agree += int((g.argmax(-1) == r.argmax(-1)).sum())
                total += int(np.prod(g.shape[:-1]))
        rows.append({"tau_i": float(tau), "activation_sparsity": float(sparsity[tau]),
                     "relative_error": float(np.sqrt(num / den)),
                     "argmax_agreement": agree / total if total else 1.0})
    return rows


def write_study(rows: list[dict[str, float]], source: ModelSource, data: dict[str, Any],
                out: Path) -> dict[str, Path]:
    """``study.txt`` and ``study.json`` of a fidelity study."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"DynaProp fidelity study: {source.kind} {source.path}",
             f"inputs: {data['file']} ({data['examples']} sequences of {data['length']} tokens)",
             ""]
    from transcode_ir.tables import format_table

    lines.append(format_table(
        ("tau_i", "act. sparsity", "rel. error", "argmax agree"),
        [(f"{row['tau_i']:g}", f"{100 * row['activation_sparsity']:.1f}%",
          f"{row['relative_error']:.2e}", f"{100 * row['argmax_agreement']:.1f}%")
         for row in rows], align="rrrr"))
    table = out / "study.txt"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    document = out / "study.json"
    document.write_text(json.dumps({"format": "transcode.dynaprop-fidelity-study", "version": 1,
                                    "model": str(source.path), "kind": source.kind,
                                    "data": data, "rows": rows}, indent=2) + "\n",
                        encoding="utf-8")
    return {"table": table, "json": document}
