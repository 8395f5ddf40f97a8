from django.http import HttpRequest

from .roles import ROLES, has_role


def roles(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {"roles": {role: has_role(user, role) for role in ROLES}}
