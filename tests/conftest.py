"""The layers: tests/unit needs nothing but the venv; every test under tests/integration
and tests/cluster carries a marker naming the outside program it needs (pytest.ini)."""

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every marker pytest.ini registers names an outside program.
    outside = {line.split(":")[0].strip() for line in config.getini("markers")}
    misplaced = []
    for item in items:
        layer = Path(item.path).relative_to(TESTS).parts[0]
        marked = outside & {mark.name for mark in item.iter_markers()}
        if (layer == "unit") == bool(marked):
            misplaced.append(f"{item.nodeid} (layer {layer}, markers {sorted(marked) or 'none'})")
    if misplaced:
        raise pytest.UsageError("tests outside their layer's rule (see tests/conftest.py):\n" + "\n".join(misplaced))
