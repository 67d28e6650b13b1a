import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "crash_harness", Path(__file__).with_name("crash_harness.py")
)
harness = importlib.util.module_from_spec(_spec)
sys.modules["crash_harness"] = harness  # dataclasses look their module up there
_spec.loader.exec_module(harness)


@pytest.mark.slow
def test_no_confirmed_sale_is_lost_across_100_sigkills(tmp_path):
    outcome = harness.run(tmp_path, kills=100, seed=20261127)
    assert outcome.problems == []
    assert outcome.kills == 100
    # the kills must really land mid-trading, not only between runs
    assert len(outcome.confirmed) > 100


def test_checker_notices_a_missing_confirmed_sale(tmp_path):
    """The checker itself must be able to fail."""
    outcome = harness.run(tmp_path, kills=3, seed=1)
    assert outcome.problems == []
    problems = harness.check(harness.DataDir(tmp_path / "till"), [*outcome.confirmed, 10**6])
    assert problems and "missing" in problems[0]
