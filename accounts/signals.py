from typing import Any


def ensure_role_groups(sender: Any = None, **kwargs: Any) -> None:
    from .services import role_groups_ensure

    role_groups_ensure()
