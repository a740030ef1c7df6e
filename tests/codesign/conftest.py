"""Fixtures of the co-design tests.

* ``model_cache_dir``: the co-design model cache, kept in pytest's cache
  directory (``.pytest_cache/d/codesign_models``) so that bert-tiny is exported
  once across sessions (a session temporary folder under ``-p no:cacheprovider``; its key hashes the sources that build it, so a change
  to the zoo, exporter, importer or passes rebuilds it).
* ``small_space_file``: a 64-point hardware design space for brute-force checks.
* ``joint_space``: a joint space with a model space, transcode-space and a
  schedule space, for strategy tests with the synthetic evaluator.

The ``ray`` marker groups the tests that start Ray (``pytest -m ray`` /
``-m "not ray"``): the in-process RayExecutor test, the Ray Client test and
the kill/socket-table test of a Ray sweep; they share the xdist group "ray"
so that only one Ray instance runs at a time under ``make test``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL_SPACE = """\
# 64 points: small enough to check a sweep against brute force.
design_space "codesign-test-space" {
  technology = "14nm"
  clock = 700 MHz
  data_width = 20 bits
  pe_array {
    pes in {4, 16}
    lanes in {4, 16}
    macs_per_lane in {1, 16}
    nonlinearity = gelu
  }
  softmax { per_pe in {1, 4} }
  sparsity { pre = on  post = on  stochastic_rounding = off }
  activation_buffer { size in {16 KiB, 4 MiB} }
  weight_buffer { size = 8 MiB }
  mask_buffer { size = 1 MiB }
  main_memory in {
    { type = dram  config = 32-2-1 },
    { type = hbm   config = 32-1-4 },
  }
  mapping { tiles = 1x16x16  batch = 1 }
}
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: starts a Ray instance (25-40 s each on an idle VM)")


@pytest.fixture(scope="session")
def model_cache_dir(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)      # None under -p no:cacheprovider
    if cache is None:
        return tmp_path_factory.mktemp("codesign_models")
    return Path(cache.mkdir("codesign_models"))


@pytest.fixture(scope="session")
def small_space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "small.hwdsl"
    path.write_text(SMALL_SPACE)
    return path


@pytest.fixture(scope="session")
def joint_space():
    from tools.codesign.spaces import HardwareSpace, JointSpace, ModelSpace, ScheduleSpace

    model = ModelSpace(layers=(2, 4), hidden=(128, 256), heads=(2, 4),
                       head_types=("sdp", "wma", "dft", "conv9"), ff_stacks=(1, 2),
                       ff_widths=(256, 512), name="test-models")
    schedule = ScheduleSpace(tiles=("auto", "design", "1x16x16"), orders=("auto", "bijk", "kjib"),
                             tau_i=(0.0, 0.01))
    return JointSpace(model, HardwareSpace("transcode-space"), schedule)
