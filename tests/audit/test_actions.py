"""Every action the code writes is in the catalogue, with a label people read."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

from audit.actions import AuditAction

APPS = ("accounts", "audit", "venues", "whitelist", "withdrawals", "oversight", "demo", "core")


def _action_values(node: ast.AST) -> list[ast.expr]:
    """What an ``action=`` keyword, or an assignment to a name ``action``, is given."""
    if isinstance(node, ast.keyword) and node.arg == "action":
        values = [node.value]
    elif isinstance(node, ast.Assign):
        values = []
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == "action":
                values.append(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                values += [
                    v
                    for t, v in zip(target.elts, node.value.elts, strict=False)
                    if isinstance(t, ast.Name) and t.id == "action"
                ]
    else:
        return []
    return [
        branch
        for value in values
        for branch in ([value.body, value.orelse] if isinstance(value, ast.IfExp) else [value])
    ]


def _uncatalogued_call_sites() -> list[str]:
    """``audit_event_record(action=...)`` calls, and names bound to action strings, whose value is
    a literal or an f-string rather than a catalogue member."""
    found = []
    for app in APPS:
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                for value in _action_values(node):
                    literal = isinstance(value, ast.Constant) and isinstance(value.value, str)
                    if (literal and "." in value.value) or isinstance(value, ast.JoinedStr):
                        found.append(f"{path.relative_to(settings.BASE_DIR)}:{node.lineno}")
    return found


def test_every_action_the_code_writes_comes_from_the_catalogue():
    assert _uncatalogued_call_sites() == []


def test_every_action_has_a_label_and_a_dotted_name():
    for action in AuditAction:
        assert action.label and action.label != action.value
        assert "." in action.value and len(action.value) <= 64


def test_a_label_reads_as_words_and_an_unknown_name_stays_itself():
    assert AuditAction.label_of("withdrawal.requested") == "Withdrawal requested"
    assert AuditAction.WITHDRAWAL_REQUESTED == "withdrawal.requested"
    assert AuditAction.label_of("retired.action") == "retired.action"
