"""The family matrix's fixtures: each family's model built once, each (family,
exporter) exported and imported once per run, in a session temporary folder.

Every cell of one family runs on one xdist worker (``xdist_group`` = the
family; ``make test`` uses ``--dist loadgroup``), so the exports are not
repeated across workers.  A stage that fails is remembered: the cells that
need it fail with "needs <stage>: <error>" instead of redoing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frontends.hf import matrix

#: Stages a cell needs before it (in order).
NEEDS = {
    "export": (),
    "import": ("export",),
}


class FamilyCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.models: dict[str, Any] = {}
        self.subjects: dict[tuple[str, str], matrix.Subject] = {}
        self.failures: dict[tuple[str, str, str], BaseException] = {}

    def _stage(self, subject: matrix.Subject, stage: str) -> None:
        key = (subject.family.name, subject.exporter, stage)
        if key in self.failures:
            err = self.failures[key]
            raise AssertionError(f"needs {stage}: {type(err).__name__}: {err}") from None
        if subject.seconds and stage in subject.seconds:
            return
        try:
            matrix.run_cell(subject, stage)
        except Exception as err:  # noqa: BLE001 - remembered for the cells that need it
            self.failures[key] = err
            raise

    def subject(self, name: str, exporter: str, *, upto: str) -> matrix.Subject:
        """The subject with ``export`` (and ``import`` unless ``upto='export'``) done."""
        key = (name, exporter)
        if key not in self.subjects:
            subject = matrix.subject(name, exporter, self.directory)
            if name in self.models:
                subject.model = self.models[name]
            self.subjects[key] = subject
        subject = self.subjects[key]
        stages = ("export",) if upto == "export" else ("export", "import")
        for stage in stages:
            self._stage(subject, stage)
            if stage == "export":
                self.models[name] = subject.model
        return subject


@pytest.fixture(scope="session")
def families(tmp_path_factory: pytest.TempPathFactory) -> FamilyCache:
    return FamilyCache(tmp_path_factory.mktemp("families"))
