"""``make test`` runs the suite with ``pytest -n 2 --dist loadgroup``: the tests
marked ``xdist_group(name)`` run on one worker, so that a group's shared work
is done once (each family of the family matrix is exported once, the reports'
compiles are made once, one Ray instance runs at a time).

pytest-xdist groups by appending ``@<name>`` to each marked test's node id in
the worker, and the scheduler reads the group from there.  With pytest 9.2
that edit no longer takes effect (pytest-xdist issue 1386): nothing fails, the
groups are just spread over both workers, which then both redo the work.
pyproject.toml pins a pytest/pytest-xdist pair with which grouping works; this
test fails when a pair without it is installed.
"""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("xdist-groups-check")
def test_xdist_group_reaches_the_scheduler(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("checks pytest-xdist's --dist loadgroup (make test runs it)")
    assert request.node.nodeid.endswith("@xdist-groups-check"), (
        f"node id {request.node.nodeid!r} has no '@xdist-groups-check': this pytest "
        "and pytest-xdist do not group by xdist_group (pin a working pair in pyproject.toml)")
