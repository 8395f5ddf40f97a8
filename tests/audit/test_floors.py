"""The trail sits on floor 1: audit/ imports no domain app, not even inside a function, so
recording an event can never pull in (or cycle through) the apps whose acts it records."""

from __future__ import annotations

import ast
from pathlib import Path

import audit

DOMAIN_APPS = {"whitelist", "withdrawals", "venues", "oversight"}


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_audit_imports_no_domain_app():
    root = Path(audit.__file__).parent
    offences = {
        f"{path.relative_to(root)}: {module}"
        for path in root.rglob("*.py")
        for module in _imported_modules(path)
        if module.split(".")[0] in DOMAIN_APPS
    }
    assert not offences


def test_the_walk_sees_a_function_local_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from withdrawals.models import WithdrawalRequest\n")
    assert "withdrawals.models" in _imported_modules(sample)
