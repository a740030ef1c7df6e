"""A BOSHCODE-style search: neural surrogate with uncertainty, gradient search
of the acquisition (GOBI), snapping to valid points.

After Tuli & Jha (TransCODE, 2023; docs/sources.md,
"Co-design method").  Imports torch (the only strategy that does).

Surrogate, retrained after every batch (``epochs`` full-batch Adam steps the first
time, then ``warm_epochs`` from the previous weights) on all told points
(inputs: the joint space's continuous encoding in [0, 1]; target: the
objective's score scaled to [0, 1], failed points at the strategy's penalty):

* **teacher** -- one branch per input (model, hardware, schedule encodings that
  are not empty), concatenated, two hidden layers with dropout, sigmoid
  output: the mean ``mu``;
* **student** -- same shape without dropout, softplus output: regresses the
  *epistemic* uncertainty, the spread of ``mc_samples`` Monte-Carlo dropout
  passes of the teacher, measured at the told points and at random points;
* **heteroscedastic network** -- mean and log-variance heads trained with the
  Gaussian negative log-likelihood: the *aleatoric* ``sigma_a``.

Acquisition (we maximise): upper confidence bound ``mu + k (sigma_e +
sigma_a)`` with ``k = 0.5`` (the paper's ``mu - 0.5 (sigma_e + sigma_a)`` when
minimising).

GOBI: from the best told points and random points, gradient ascent on the
acquisition over the continuous encoding (Adam, projected onto [0, 1]; the
paper used a second-order optimiser), then snapping each result to the
nearest valid point (:meth:`JointSpace.from_vector`).  The snapped candidates
are pooled with one-decision mutations of the best points and random points,
and the batch is the ``count`` fresh candidates of highest acquisition.  The
first ``initial`` points are random.  ``patience``: the strategy reports
convergence when the best has not improved for that many batches (the paper
stops after 10); a sweep with a budget may ignore it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tools.codesign.strategies.base import Observation, Strategy

__all__ = ["BoshcodeStrategy"]


def _torch() -> Any:
    import torch

    return torch


class _Branched:
    """Builders for the three networks (kept in one place)."""

    @staticmethod
    def make(widths: list[int], hidden: int, dropout: float, outputs: int) -> Any:
        torch = _torch()
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.widths = widths
                branch = max(8, hidden // 2)
                self.branches = nn.ModuleList(
                    [nn.Sequential(nn.Linear(w, branch), nn.ReLU()) for w in widths])
                self.trunk = nn.Sequential(
                    nn.Linear(branch * len(widths), hidden), nn.ReLU(), nn.Dropout(dropout),
                    nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                    nn.Linear(hidden, outputs))

            def forward(self, x: Any) -> Any:
                parts, start = [], 0
                for width, branch in zip(self.widths, self.branches):
                    parts.append(branch(x[:, start:start + width]))
                    start += width
                return self.trunk(torch.cat(parts, dim=1))

        return Net()


class BoshcodeStrategy(Strategy):
    """BOSHCODE-style surrogate search (see the module docstring)."""

    name = "boshcode"

    def __init__(self, space: Any, objective: Any, seed: int = 0, initial: int = 24,
                 k: float = 0.5, hidden: int = 64, dropout: float = 0.1, mc_samples: int = 16,
                 epochs: int = 200, warm_epochs: int = 50, gobi_starts: int = 8,
                 gobi_steps: int = 40,
                 pool: int = 256, patience: int | None = None) -> None:
        super().__init__(space, objective, seed)
        self.initial = initial
        self.k = k
        self.hidden = hidden
        self.dropout = dropout
        self.mc_samples = mc_samples
        self.epochs = epochs
        self.warm_epochs = warm_epochs
        self.gobi_starts = gobi_starts
        self.gobi_steps = gobi_steps
        self.pool = pool
        self.patience = patience
        self._nets: tuple[Any, Any, Any] | None = None
        self._batches_without_gain = 0
        self._best_at_last_batch = -math.inf
        slices = space.vector_slices()
        self._widths = [s.stop - s.start for s in slices.values() if s.stop > s.start]
        self._vectors: dict[Any, np.ndarray] = {}

    def options(self) -> dict[str, Any]:
        return {"initial": self.initial, "k": self.k, "hidden": self.hidden,
                "dropout": self.dropout, "mc_samples": self.mc_samples, "epochs": self.epochs,
                "warm_epochs": self.warm_epochs,
                "gobi_starts": self.gobi_starts, "gobi_steps": self.gobi_steps,
                "pool": self.pool, "patience": self.patience}

    # -- bookkeeping -------------------------------------------------------------

    def _vector(self, point: Any) -> np.ndarray:
        vector = self._vectors.get(point)
        if vector is None:
            vector = self.space.to_vector(point)
            self._vectors[point] = vector
        return vector

    def tell(self, points: Any, outcomes: Any) -> None:
        super().tell(points, outcomes)
        best = self.best.score if self.best is not None else -math.inf
        if best > self._best_at_last_batch + 1e-12:
            self._batches_without_gain = 0
            self._best_at_last_batch = best
        else:
            self._batches_without_gain += 1

    @property
    def converged(self) -> bool:
        return self.patience is not None and self._batches_without_gain >= self.patience

    # -- surrogate -------------------------------------------------------------------

    def _dataset(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([self._vector(o.point) for o in self.history])
        scores = np.array([self.finite_score(o) for o in self.history])
        low, high = scores.min(), scores.max()
        y = (scores - low) / (high - low) if high > low else np.full_like(scores, 0.5)
        return x.astype(np.float32), y.astype(np.float32)

    def _fit(self) -> None:
        torch = _torch()
        torch.set_num_threads(1)
        torch.manual_seed(self.seed * 100_003 + len(self.history))
        x_np, y_np = self._dataset()
        x = torch.from_numpy(x_np)
        y = torch.from_numpy(y_np)[:, None]
        epochs = self.warm_epochs
        if self._nets is None:
            epochs = self.epochs
            teacher = _Branched.make(self._widths, self.hidden, self.dropout, 1)
            student = _Branched.make(self._widths, self.hidden, 0.0, 1)
            hetero = _Branched.make(self._widths, self.hidden, 0.0, 2)
            self._nets = (teacher, student, hetero)
        teacher, student, hetero = self._nets
        # Teacher: mean.
        self._train(teacher, lambda net: torch.nn.functional.mse_loss(
            torch.sigmoid(net(x)), y), epochs)
        # Student: epistemic spread of MC-dropout passes at told and random points.
        extra = np.stack([self.space.to_vector(self.space.sample(self.rng))
                          for _ in range(min(128, 2 * len(x_np)))]).astype(np.float32)
        probe = torch.cat([x, torch.from_numpy(extra)])
        teacher.train()
        with torch.no_grad():
            passes = torch.stack([torch.sigmoid(teacher(probe)) for _ in range(self.mc_samples)])
        spread = passes.std(dim=0)
        teacher.eval()
        self._train(student, lambda net: torch.nn.functional.mse_loss(
            torch.nn.functional.softplus(net(probe)), spread), epochs)
        # Heteroscedastic network: aleatoric variance by Gaussian NLL.

        def nll(net: Any) -> Any:
            out = net(x)
            mean, log_var = torch.sigmoid(out[:, :1]), out[:, 1:].clamp(-12.0, 4.0)
            return (0.5 * (log_var + (y - mean) ** 2 / log_var.exp())).mean()

        self._train(hetero, nll, epochs)
        for net in self._nets:
            net.eval()

    @staticmethod
    def _train(net: Any, loss_of: Any, epochs: int) -> None:
        torch = _torch()
        net.train()
        optimiser = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-5)
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = loss_of(net)
            loss.backward()
            optimiser.step()

    def _acquisition(self, x: Any) -> Any:
        """UCB of a batch of encodings (a torch tensor; differentiable)."""
        torch = _torch()
        teacher, student, hetero = self._nets  # type: ignore[misc]
        mean = torch.sigmoid(teacher(x))[:, 0]
        epistemic = torch.nn.functional.softplus(student(x))[:, 0]
        aleatoric = torch.exp(0.5 * hetero(x)[:, 1].clamp(-12.0, 4.0))
        return mean + self.k * (epistemic + aleatoric)

    def _score_points(self, points: list[Any]) -> np.ndarray:
        torch = _torch()
        x = torch.from_numpy(np.stack([self._vector(p) for p in points]).astype(np.float32))
        with torch.no_grad():
            return self._acquisition(x).numpy()

    def _gobi(self) -> list[Any]:
        """Gradient ascent on the acquisition from good and random starts, snapped."""
        torch = _torch()
        ranked = sorted(self.history, key=lambda o: -o.score)
        starts = [self._vector(o.point) for o in ranked[: self.gobi_starts // 2]]
        while len(starts) < self.gobi_starts:
            starts.append(self.space.to_vector(self.space.sample(self.rng)))
        x = torch.tensor(np.stack(starts).astype(np.float32), requires_grad=True)
        optimiser = torch.optim.Adam([x], lr=0.05)
        for _ in range(self.gobi_steps):
            optimiser.zero_grad()
            (-self._acquisition(x).sum()).backward()
            optimiser.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
        return [self.space.from_vector(row) for row in x.detach().numpy().astype(float)]

    # -- asking ----------------------------------------------------------------------

    def ask(self, count: int) -> list[Any]:
        if len(self.history) < self.initial or self.best is None:
            return [self.fresh(lambda: self.space.sample(self.rng)) for _ in range(count)]
        self._fit()
        candidates: list[Any] = list(self._gobi())
        top = sorted(self.history, key=lambda o: -o.score)[:5]
        for _ in range(self.pool // 2):
            parent = top[self.rng.randrange(len(top))].point
            candidates.append(self.space.mutate(parent, self.rng,
                                                count=1 + (self.rng.random() < 0.3)))
        for _ in range(self.pool // 2):
            candidates.append(self.space.sample(self.rng))
        unique = [p for p in dict.fromkeys(candidates)
                  if p not in self.seen and p not in self.pending]
        chosen: list[Any] = []
        if unique:
            scores = self._score_points(unique)
            for index in np.argsort(-scores, kind="stable")[:count]:
                chosen.append(unique[int(index)])
        for point in chosen:
            self.pending.add(point)
        while len(chosen) < count:
            chosen.append(self.fresh(lambda: self.space.sample(self.rng)))
        return chosen

    def _observe(self, observation: Observation) -> None:
        self._vector(observation.point)
