"""``tcc dynaprop``: DynaProp studies and density profiles on real training data.

* ``tcc dynaprop study --model bert-tiny --task listops --tau-i 0,0.01,0.02,0.05
  --tau-t 0,1e-4,1e-3 [--steps N] [--seed S] [--out DIR] [--long] ...``:
  trains every (τ_I, τ_T) pair from the same seed and writes accuracy,
  activation sparsity and gradient sparsity per setting as ``study.txt``,
  ``study.json`` and ``study.png`` in DIR (and prints the table).
* ``tcc dynaprop profile --model NAME [--tau-i X] [--tau-t X]
  [--target-sparsity S [--per-point]] [--mode inference|training] -o profile.json``:
  measures the density at every prune point (forward; backward and weight
  gradients too in training mode) and writes a profile (schema in
  docs/dynaprop.md).

Arguments are checked (model name, τ lists, sizes) before torch is imported;
mistakes are :class:`UserError`\\ s.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from transcode_ir.errors import UserError

__all__ = ["parse_threshold_list", "register"]

DEFAULT_TAU_I = "0,0.01,0.02,0.05"
DEFAULT_TAU_T = "0,1e-4,1e-3"

#: The short default budget (minutes on 2 cores for BERT-Tiny) and the --long one.
SHORT_BUDGET: dict[str, int] = {"steps": 300, "train_size": 4000, "eval_size": 500}
LONG_BUDGET: dict[str, int] = {"steps": 3000, "train_size": 20000, "eval_size": 1000}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dynaprop",
        help="DynaProp: accuracy/sparsity studies and density profiles (torch)",
        description="Prune activations (|x| <= tau_I) and gradients (|g| <= tau_T) at run time "
        "while training zoo models on an offline task; measure accuracy and sparsity.",
    )
    parser.set_defaults(func=lambda args: _help(parser))
    actions = parser.add_subparsers(dest="dynaprop_command", metavar="ACTION")

    study = actions.add_parser(
        "study", help="train a (tau_I, tau_T) grid; table, JSON and plot of accuracy vs sparsity"
    )
    _model_and_task(study)
    study.add_argument("--tau-i", default=DEFAULT_TAU_I, metavar="LIST",
                       help=f"comma-separated activation thresholds (default {DEFAULT_TAU_I})")
    study.add_argument("--tau-t", default=DEFAULT_TAU_T, metavar="LIST",
                       help=f"comma-separated gradient thresholds (default {DEFAULT_TAU_T})")
    study.add_argument("--steps", type=int, default=None,
                       help=f"training steps per setting (default {SHORT_BUDGET['steps']}, "
                       f"--long {LONG_BUDGET['steps']})")
    study.add_argument("--long", action="store_true",
                       help=f"the longer budget: {LONG_BUDGET['steps']} steps, "
                       f"{LONG_BUDGET['train_size']} training examples")
    study.add_argument("--batch-size", type=int, default=32, help="training batch (default 32)")
    study.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    study.add_argument("--workers", dest="jobs", type=int, default=None,
                       help="settings trained at once, in worker processes (default: the "
                       "number of available cores); results do not depend on it")
    from tools.console import deprecated_alias  # one spelling per meaning (cli helper)

    study.add_argument("--jobs", dest="jobs", type=int, action=deprecated_alias("--workers"),
                       help=argparse.SUPPRESS)
    study.add_argument("--out", default="dynaprop-study", metavar="DIR",
                       help="output directory (default ./dynaprop-study)")
    study.set_defaults(func=_study)

    profile = actions.add_parser("profile", help="measure per-prune-point densities into JSON")
    _model_and_task(profile)
    profile.add_argument("--tau-i", type=str, default="0", metavar="X",
                         help="activation threshold (default 0)")
    profile.add_argument("--tau-t", type=str, default="0", metavar="X",
                         help="gradient threshold (default 0; used in training mode)")
    profile.add_argument("--target-sparsity", type=float, default=None, metavar="S",
                         help="calibrate tau_I for this activation sparsity (fraction in [0, 1]) "
                         "on training batches; replaces --tau-i")
    profile.add_argument("--per-point", action="store_true",
                         help="with --target-sparsity: one tau_I per prune point")
    profile.add_argument("--mode", choices=("inference", "training"), default="inference",
                         help="forward only (default) or forward+backward+step")
    profile.add_argument("--batches", type=int, default=4, help="measured batches (default 4)")
    profile.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    profile.add_argument("--train-steps", type=int, default=0,
                         help="train this many steps first (default 0: the seeded model)")
    profile.add_argument("-o", "--output", required=True, help="profile JSON to write")
    profile.set_defaults(func=_profile)


def _model_and_task(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="bert-tiny",
                        help="zoo name or FlexiBERT description (default bert-tiny), an ONNX "
                        "file, or a Hugging Face model folder (save_pretrained; read from disk "
                        "only); the last two need --tokens or --text")
    parser.add_argument("--tokens", default=None, metavar="FILE",
                        help="your own inputs: one sequence of integer token ids per line "
                        "(spaces or commas), or an .npy/.npz integer array [N, L]")
    parser.add_argument("--text", default=None, metavar="FILE",
                        help="your own inputs: one example per line, tokenized by the model "
                        "folder's tokenizer (or --tokenizer)")
    parser.add_argument("--tokenizer", default=None, metavar="DIR",
                        help="a folder with tokenizer files for --text (default: the model "
                        "folder)")
    parser.add_argument("--task", default="listops", help="offline task (default listops)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights, data and batch order (default 0)")
    parser.add_argument("--train-size", type=int, default=None,
                        help=f"training examples (default {SHORT_BUDGET['train_size']})")
    parser.add_argument("--eval-size", type=int, default=None,
                        help=f"validation and test examples each "
                        f"(default {SHORT_BUDGET['eval_size']})")
    parser.add_argument("--max-length", type=int, default=64,
                        help="ListOps tokens per example including [CLS] (default 64)")
    parser.add_argument("--max-depth", type=int, default=4, help="ListOps nesting (default 4)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: deterministic, and fastest "
                        "for BERT-Tiny on a small shared CPU)")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def parse_threshold_list(text: str, option: str) -> list[float]:
    """``"0,0.01,2e-2"`` → ``[0.0, 0.01, 0.02]``; a :class:`UserError` names the bad entry."""
    expected = "expected a comma-separated list of numbers >= 0, such as 0,0.01,0.02"
    items = [item.strip() for item in str(text).split(",")]
    if not items or any(item == "" for item in items):
        raise UserError(f"{option}: empty entry in {text!r}; {expected}")
    values: list[float] = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"{option}: {item!r} is not a number; {expected}") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"{option}: {item!r} is not a finite number >= 0; {expected}")
        if value in values:
            raise UserError(f"{option}: {item!r} appears twice in {text!r}")
        values.append(value)
    return values


def _parse_single(text: str, option: str) -> float:
    values = parse_threshold_list(text, option)
    if len(values) != 1:
        raise UserError(f"{option}: expected one number, got {text!r}")
    return values[0]


def _positive(value: int | None, option: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise UserError(f"{option}: expected an integer >= {minimum}, got {value}")


def _resolve_model(name: str) -> str:
    """Check the model name or description without torch; returns it unchanged."""
    from frontends.zoo import resolve_config

    resolve_config(name)
    return name


def _task_config(args: argparse.Namespace, budget: dict[str, int]) -> Any:
    from frontends.tasks import TASKS, ListOpsConfig

    if args.task.strip().lower() not in TASKS:
        raise UserError(f"unknown task {args.task!r}; known tasks: {', '.join(TASKS)}")
    _positive(args.train_size, "--train-size")
    _positive(args.eval_size, "--eval-size")
    _positive(args.threads, "--threads")
    eval_size = args.eval_size if args.eval_size is not None else budget["eval_size"]
    return ListOpsConfig(
        train_size=args.train_size if args.train_size is not None else budget["train_size"],
        validation_size=eval_size,
        test_size=eval_size,
        max_depth=args.max_depth,
        max_length=args.max_length,
        seed=args.seed,
    )


def _tool() -> str:
    from tools.version import TOOL_VERSION

    return f"tcc {TOOL_VERSION}"


def _user_inputs(args: argparse.Namespace, source: Any) -> tuple[Any, Any]:
    from frontends.dynaprop.user_models import read_sequences

    if args.tokens is None and args.text is None:
        raise UserError(f"--model {args.model}: an ONNX file or model folder runs on your own "
                        "inputs: give --tokens FILE or --text FILE")
    tokenizer = Path(args.tokenizer) if args.tokenizer else (
        source.path if source.kind == "folder" else None)
    return read_sequences(args.tokens, args.text, args.max_length, tokenizer)


def _input_data(args: argparse.Namespace, ids: Any) -> dict[str, Any]:
    return {"task": "user inputs", "file": str(args.tokens or args.text),
            "examples": int(ids.shape[0]), "length": int(ids.shape[1]),
            "sequence_length": int(ids.shape[1])}


def _user_study(args: argparse.Namespace, source: Any) -> int:
    from frontends.dynaprop.user_models import fidelity_study, write_study

    tau_i = parse_threshold_list(args.tau_i, "--tau-i")
    _positive(args.batch_size, "--batch-size")
    ids, mask = _user_inputs(args, source)
    rows = fidelity_study(source, ids, mask, tau_i, args.batch_size)
    paths = write_study(rows, source, _input_data(args, ids), Path(args.out))
    print(paths["table"].read_text(encoding="utf-8"), end="")
    from tools.console import wrote

    for path in (paths['table'], paths['json']):
        wrote(path)
    return 0


def _user_profile(args: argparse.Namespace, source: Any) -> int:
    import tempfile

    from frontends.dynaprop.profile import build_profile, write_profile
    from frontends.dynaprop.user_models import profile_folder, profile_onnx

    tau_i = _parse_single(args.tau_i, "--tau-i")
    if args.mode != "inference":
        raise UserError(f"--mode {args.mode}: profiles of an ONNX file or a model folder are "
                        "inference profiles (your inputs carry no labels to train on)")
    if args.target_sparsity is not None or args.per_point:
        raise UserError("--target-sparsity: calibrating thresholds needs a zoo model; give "
                        "--tau-i for an ONNX file or a model folder")
    _positive(args.batch_size, "--batch-size")
    ids, mask = _user_inputs(args, source)
    data = _input_data(args, ids)
    if source.kind == "onnx":
        with tempfile.TemporaryDirectory() as scratch:
            measured = profile_onnx(source.path, ids, mask, tau_i, args.batch_size, Path(scratch))
        from frontends.dynaprop.statistics import Density, DynaPropStatistics, PointStatistics

        statistics = DynaPropStatistics({
            name: PointStatistics(name, entry["role"], entry["layer"], tau_i, 0.0,
                                  Density(entry["forward"]["elements"],
                                          entry["forward"]["zeros"]), None)
            for name, entry in measured["points"].items()})
        data["batches"] = measured["batches"]
        description = "ONNX file, densities measured by the IR interpreter"
    else:
        statistics, cls = profile_folder(source.path, ids, mask, tau_i, args.batch_size)
        data["batches"] = -(-len(ids) // args.batch_size)
        description = f"{cls} from a Hugging Face folder, torch runtime"
    profile = build_profile(statistics, model=str(source.path), description=description,
                            seed=args.seed, mode="inference", tau_i=tau_i, tau_t=0.0, data=data,
                            tool=_tool())
    path = write_profile(profile, args.output)
    from tools.console import wrote

    wrote(path, note=f"{len(profile['points'])} prune points, forward density "
          f"{profile['totals']['forward']['density']:.4f}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from frontends.dynaprop.user_models import model_source

    source = model_source(args.model)
    if source.kind != "zoo":
        return _user_study(args, source)
    model = _resolve_model(args.model)
    tau_i = parse_threshold_list(args.tau_i, "--tau-i")
    tau_t = parse_threshold_list(args.tau_t, "--tau-t")
    budget = LONG_BUDGET if args.long else SHORT_BUDGET
    steps = args.steps if args.steps is not None else budget["steps"]
    _positive(steps, "--steps")
    _positive(args.batch_size, "--batch-size")
    _positive(args.jobs, "--workers")
    jobs = args.jobs if args.jobs is not None else max(1, len(os.sched_getaffinity(0)))
    if not args.lr > 0:
        raise UserError(f"--lr: expected a number > 0, got {args.lr}")
    task_config = _task_config(args, budget)

    from frontends.dynaprop.kernels import keep_freed_memory
    from frontends.dynaprop.study import run_study
    from frontends.tasks.trainer import TrainConfig

    keep_freed_memory()  # pruned tensors are fresh allocations; avoid page-faulting them in

    train_config = TrainConfig(steps=steps, batch_size=args.batch_size,
                               learning_rate=args.lr, seed=args.seed, threads=args.threads)
    total = len(tau_i) * len(tau_t)
    done = [0]

    def progress(row: Any) -> None:
        done[0] += 1
        print(
            f"[{done[0]}/{total}] tau_i={row.tau_i:g} tau_t={row.tau_t:g}: "
            f"test acc {100 * row.test_accuracy:.1f}%, activation sparsity "
            f"{100 * row.activation_sparsity:.1f}%, gradient sparsity "
            f"{100 * row.gradient_sparsity:.1f}% ({row.seconds:.0f} s)",
            file=sys.stderr, flush=True,
        )

    # Finished settings are kept as they finish; the same command resumes (cli helper).
    checkpoint = Path(args.out) / "study.settings.jsonl"
    try:
        result = run_study(model, tau_i, tau_t, task=args.task.strip().lower(),
                           task_config=task_config, train_config=train_config, jobs=jobs,
                           on_row=progress, checkpoint=checkpoint)
    except KeyboardInterrupt:
        print(f"interrupted: {done[0]} finished setting(s) of this run kept in {checkpoint}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    result.command = (
        f"tcc dynaprop study --model {model} --task {args.task} "
        f"--tau-i {','.join(f'{v:g}' for v in tau_i)} --tau-t {','.join(f'{v:g}' for v in tau_t)} "
        f"--steps {steps} --seed {args.seed} --batch-size {args.batch_size} --lr {args.lr:g} "
        f"--train-size {task_config.train_size} --eval-size {task_config.test_size} "
        f"--max-length {task_config.max_length} --max-depth {task_config.max_depth} "
        f"--threads {args.threads} --workers {jobs} --out {args.out}"
    )
    result.tool = _tool()
    paths = result.write(args.out)
    print(result.format_table())
    from tools.console import wrote

    for path in (paths['table'], paths['json'], paths['plot']):
        wrote(path)
    return 0


def _profile(args: argparse.Namespace) -> int:
    from frontends.dynaprop.user_models import model_source

    source = model_source(args.model)
    if source.kind != "zoo":
        return _user_profile(args, source)
    if args.tokens or args.text:
        raise UserError("--tokens/--text are for an ONNX file or a model folder; a zoo model "
                        "is profiled on --task data")
    model = _resolve_model(args.model)
    tau_i = _parse_single(args.tau_i, "--tau-i")
    tau_t = _parse_single(args.tau_t, "--tau-t")
    if args.target_sparsity is not None and not 0 <= args.target_sparsity <= 1:
        raise UserError(
            f"--target-sparsity: a sparsity is a fraction in [0, 1], got {args.target_sparsity}"
        )
    if args.per_point and args.target_sparsity is None:
        raise UserError("--per-point needs --target-sparsity")
    _positive(args.batches, "--batches")
    _positive(args.batch_size, "--batch-size")
    _positive(args.train_steps, "--train-steps", minimum=0)
    task_config = _task_config(args, SHORT_BUDGET)

    from frontends.dynaprop.kernels import keep_freed_memory
    from frontends.dynaprop.profile import write_profile
    from frontends.dynaprop.profiling import measure_profile

    keep_freed_memory()

    profile = measure_profile(
        model,
        task=args.task.strip().lower(),
        task_config=task_config,
        seed=args.seed,
        mode=args.mode,
        tau_i=tau_i,
        tau_t=tau_t,
        batches=args.batches,
        batch_size=args.batch_size,
        train_steps=args.train_steps,
        target_sparsity=args.target_sparsity,
        per_point=args.per_point,
        threads=args.threads,
        tool=_tool(),
    )
    path = write_profile(profile, args.output)
    totals = profile["totals"]
    line = f"forward density {totals['forward']['density']:.4f}"
    if totals["backward"] is not None:
        line += f", backward density {totals['backward']['density']:.4f}"
    if profile["calibration"] is not None:
        calibration = profile["calibration"]
        line += (
            f"; target sparsity {calibration['target_sparsity']:.4f}, achieved "
            f"{calibration['achieved_calibration']:.4f} (calibration) / "
            f"{calibration['achieved_held_out']:.4f} (held out)"
        )
    from tools.console import wrote

    wrote(path, note=f"{len(profile['points'])} prune points, {line}")
    return 0
