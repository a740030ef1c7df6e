"""Hardware design spaces: the DSL with choice sets.

Any value of a design may be a choice set (``pes in {64, 128, 256}``) and any
block a set of alternative blocks (``main_memory in { {type = dram config =
32-2-1}, {type = hbm config = 32-1-4} }``).  Such a file is a
:class:`DesignSpace`: the product of its parameters, in file order.

A point is named by one integer (``0 <= index < space.size``, mixed radix with
the first parameter most significant, the order ``itertools.product`` uses) or
by the tuple of chosen alternative positions.  Points are built lazily, so a
space of millions of points costs nothing until asked; each point is a fully
validated :class:`~backends.elector.design.Accelerator` named
``"<space>#<index>"``.  Sampling takes a seed and is reproducible.

Every alternative is checked when the space is loaded (with the other
parameters at their first choice), so a bad value in a choice set is reported
at its own ``line:col`` up front.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from backends.elector.design import Accelerator
from backends.elector.hwdsl import (
    BLOCK_SCHEMAS,
    RawParameter,
    Settings,
    _syntax_and_settings,
    format_settings,
    format_value,
    materialise,
    read_text,
    settings_of,
    spec_of,
)
from backends.elector.technology import Technology
from transcode_ir.errors import UserError

__all__ = ["DesignSpace", "Parameter", "load_space", "parse_space", "format_space"]


@dataclass(frozen=True)
class Parameter:
    """One axis of a design space.

    ``name`` is the dotted DSL path (``pe_array.pes``, or ``main_memory`` for
    a choice of blocks); ``values`` are the stored values (bytes, Hz, ...; a
    block alternative is a tuple of ``(key, value)`` pairs) and ``labels``
    the same values as the DSL writes them (``4 MiB``).
    """

    name: str
    path: tuple[str, ...]
    values: tuple[Any, ...]
    labels: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.values)


class DesignSpace:
    """A named product of parameters over a base design (see module docstring)."""

    def __init__(self, name: str, description: str, base: Settings,
                 parameters: list[RawParameter], filename: str, text: str) -> None:
        self.name = name
        self.description = description
        self.filename = filename
        self._base = base
        self._raw = parameters
        self._text = text
        self.parameters: tuple[Parameter, ...] = tuple(_public(raw) for raw in parameters)
        self._radices = tuple(parameter.count for parameter in self.parameters)

    # -- size and encoding -------------------------------------------------

    @property
    def size(self) -> int:
        """Number of points (the product of the parameter counts)."""
        return math.prod(self._radices)

    def __len__(self) -> int:
        return self.size

    def decode(self, index: int) -> tuple[int, ...]:
        """The alternative chosen for each parameter at point ``index``."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise UserError(f"a point index must be an integer, got {index!r}")
        if not 0 <= index < self.size:
            raise UserError(f"point {index} is outside design space {self.name!r} "
                            f"(0 .. {self.size - 1})")
        choices = []
        for radix in reversed(self._radices):
            index, choice = divmod(index, radix)
            choices.append(choice)
        return tuple(reversed(choices))

    def encode(self, choices: Sequence[int]) -> int:
        """The point index of a tuple of alternative positions."""
        choices = tuple(choices)
        if len(choices) != len(self._radices):
            raise UserError(f"design space {self.name!r} has {len(self._radices)} parameters; "
                            f"got {len(choices)} choices")
        index = 0
        for parameter, radix, choice in zip(self.parameters, self._radices, choices):
            if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < radix:
                raise UserError(f"choice {choice!r} for {parameter.name} is outside "
                                f"0 .. {radix - 1}")
            index = index * radix + choice
        return index

    # -- points --------------------------------------------------------------

    def _settings(self, choices: tuple[int, ...]) -> Settings:
        chosen = [raw.alternatives[choice] for raw, choice in zip(self._raw, choices)]
        return self._base.merged(*chosen)

    def point(self, key: int | Sequence[int]) -> Accelerator:
        """The accelerator at an index or a tuple of alternative positions."""
        if isinstance(key, int) and not isinstance(key, bool):
            index, choices = key, self.decode(key)
        else:
            choices = tuple(key)
            index = self.encode(choices)
        return materialise(f"{self.name}#{index}", self._settings(choices), self.filename,
                           self._text)

    __getitem__ = point

    def describe(self, key: int | Sequence[int]) -> dict[str, str]:
        """``{parameter name: label}`` of a point, e.g. ``{"pe_array.pes": "64", ...}``."""
        choices = self.decode(key) if isinstance(key, int) else tuple(key)
        self.encode(choices)  # range check
        return {parameter.name: parameter.labels[choice]
                for parameter, choice in zip(self.parameters, choices)}

    def choices(self) -> Iterator[tuple[int, ...]]:
        """Every point's alternative positions, lazily, in index order."""
        return itertools.product(*(range(radix) for radix in self._radices))

    def __iter__(self) -> Iterator[Accelerator]:
        """Every point's accelerator, lazily, in index order."""
        for index in range(self.size):
            yield self.point(index)

    def sample_indices(self, count: int, seed: int | random.Random | None = 0,
                       replace: bool = False) -> list[int]:
        """``count`` point indices drawn uniformly with a seeded generator
        (``seed`` an int or a ``random.Random``); without replacement unless
        ``replace``."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UserError(f"sample count must be a non-negative integer, got {count!r}")
        if replace:
            return [rng.randrange(self.size) for _ in range(count)]
        if count > self.size:
            raise UserError(f"cannot draw {count} distinct points from design space "
                            f"{self.name!r} of {self.size}")
        return rng.sample(range(self.size), count)

    def sample(self, count: int, seed: int | random.Random | None = 0,
               replace: bool = False) -> list[Accelerator]:
        """``count`` accelerators drawn as by :meth:`sample_indices`."""
        return [self.point(index) for index in self.sample_indices(count, seed, replace)]

    def index_of(self, accelerator: Accelerator) -> int:
        """The index of the point with the same hardware as ``accelerator``
        (name and description aside).

        Raises :class:`UserError` naming the first setting that is not in the space.
        """
        values = settings_of(accelerator)
        choices = []
        for parameter, raw in zip(self.parameters, self._raw):
            for position, alternative in enumerate(raw.alternatives):
                if _matches(alternative, values, parameter.path):
                    choices.append(position)
                    break
            else:
                shown = (format_value(spec_of(parameter.path), values[parameter.path])
                         if parameter.path in values else "its setting")
                raise UserError(f"{accelerator.name!r} is not in design space {self.name!r}: "
                                f"{parameter.name} = {shown} is not one of "
                                f"{', '.join(parameter.labels)}")
        index = self.encode(choices)
        candidate = self.point(index)
        if replace(candidate, name=accelerator.name,
                   description=accelerator.description) != accelerator:
            mine, theirs = settings_of(candidate), values
            differing = [".".join(path) for path in sorted(set(mine) | set(theirs))
                         if mine.get(path) != theirs.get(path) and path != ("description",)]
            raise UserError(f"{accelerator.name!r} is not in design space {self.name!r}: "
                            f"it differs in {', '.join(differing) or 'its technology'}")
        return index

    # -- summary -------------------------------------------------------------

    @property
    def technology(self) -> Technology:
        """The technology of the first point (all points share it unless the
        technology itself is a parameter)."""
        return self.point(0).technology

    def validate(self) -> DesignSpace:
        """Build each alternative of each parameter once (others at their first
        choice), so that a bad value is reported at its own line:col."""
        first = [0] * len(self._raw)
        if not self._raw:
            self.point(0)
        for position, raw in enumerate(self._raw):
            for choice in range(len(raw.alternatives)):
                choices = list(first)
                choices[position] = choice
                self.point(tuple(choices))
        return self

    def format(self) -> str:
        """The space in the DSL (as written, without comments); parses back to
        a space with the same parameters and points."""
        choices = {raw.path: list(parameter.labels)
                   for raw, parameter in zip(self._raw, self.parameters) if len(raw.path) > 1
                   or raw.path[0] not in BLOCK_SCHEMAS}
        block_choices = {raw.path[0]: [alternative.values for alternative in raw.alternatives]
                         for raw in self._raw
                         if len(raw.path) == 1 and raw.path[0] in BLOCK_SCHEMAS}
        return format_settings("design_space", self.name, self._base.values, choices,
                               block_choices)

    def __repr__(self) -> str:
        return f"DesignSpace({self.name!r}, {self.size} points, {len(self.parameters)} parameters)"


def _public(raw: RawParameter) -> Parameter:
    is_block = len(raw.path) == 1 and raw.path[0] in BLOCK_SCHEMAS
    values, labels = [], []
    for alternative in raw.alternatives:
        if is_block:
            items = tuple((path[-1], value) for path, value in alternative.values.items())
            values.append(items)
            labels.append("{" + " ".join(f"{key}={format_value(spec_of(path), value)}"
                                         for (key, value), path
                                         in zip(items, alternative.values)) + "}")
        else:
            value = alternative.values[raw.path]
            values.append(value)
            labels.append(format_value(spec_of(raw.path), value))
    return Parameter(".".join(raw.path), raw.path, tuple(values), tuple(labels))


def _matches(alternative: Settings, values: dict, path: tuple[str, ...]) -> bool:
    # settings_of leaves options at their default unwritten (power_gating,
    # multicast), so a missing value compares as the schema's default.
    if len(path) > 1 or path[0] not in BLOCK_SCHEMAS:
        return values.get(path, spec_of(path).default) == alternative.values[path]
    block = path[0]
    for key, spec in BLOCK_SCHEMAS[block].fields.items():
        full = (block, key)
        if full in alternative.values:
            if values.get(full, spec.default) != alternative.values[full]:
                return False
        elif full in values and spec.default is not None and values[full] != spec.default:
            return False
    return True


def parse_space(text: str, filename: str = "<string>") -> DesignSpace:
    """Parse a design space (``design_space`` or ``accelerator`` header, with
    or without choice sets) and check every alternative."""
    syntax, settings, parameters = _syntax_and_settings(text, filename, allow_choices=True)
    description = settings.values.get(("description",), "")
    space = DesignSpace(syntax.name, description, settings, parameters, filename, text)
    return space.validate()


def load_space(path: str | Path) -> DesignSpace:
    """Read and check a design-space file."""
    return parse_space(read_text(path), str(path))


def format_space(space: DesignSpace) -> str:
    """The DSL text of a design space (see :meth:`DesignSpace.format`)."""
    return space.format()
