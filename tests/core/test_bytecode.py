"""Workflow modules get their bytecode written even where PYTHONDONTWRITEBYTECODE is set (core.bytecode)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from core.bytecode import WORKFLOW_PACKAGES, ensure_workflow_bytecode


def test_the_workflow_packages_get_a_pyc_the_import_system_then_uses(tmp_path: Path) -> None:
    for package in WORKFLOW_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "loop.py").write_text("STEPS = ('order', 'exam', 'report')\n")
    assert ensure_workflow_bytecode(tmp_path) is True
    for package in WORKFLOW_PACKAGES:
        source = tmp_path / package / "loop.py"
        cached = Path(importlib.util.cache_from_source(str(source)))
        assert cached.exists()
        assert cached.stat().st_size > 0


def test_a_tree_it_cannot_compile_is_reported_not_raised(tmp_path: Path) -> None:
    for package in WORKFLOW_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "broken.py").write_text("def (:\n")
    assert ensure_workflow_bytecode(tmp_path) is False
