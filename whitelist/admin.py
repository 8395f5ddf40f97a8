"""Read-only in the Django admin: the whitelist changes only through the four-eyes services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import WhitelistedAddress


@admin.register(WhitelistedAddress)
class WhitelistedAddressAdmin(admin.ModelAdmin):
    list_display = ("label", "venue", "asset", "network", "address", "state", "active_from")
    list_filter = ("state", "venue", "asset")
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
