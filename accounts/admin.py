"""The Django admin may look at people, groups and devices, never change them.

Access changes go through the people page under four eyes, with an audit event each; an admin
form would bypass both. A TOTP key (or its QR code, or a recovery code) is shown nowhere: the
device admins list only who, when and whether it is confirmed. django-otp's own device admins
(with their key fields and QR views) are replaced, so their extra URLs are gone too.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import AccessChange, Invitation


class ReadOnlyAdmin(admin.ModelAdmin):
    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UserAdmin(ReadOnlyAdmin):
    # No password field: not even the hash's summary.
    fields = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_active",
        "is_staff",
        "is_superuser",
        "groups",
        "last_login",
        "date_joined",
    )
    list_display = ("username", "email", "is_active", "is_staff", "last_login")
    list_filter = ("is_active", "groups")
    search_fields = ("username", "email")


class GroupAdmin(ReadOnlyAdmin):
    fields = ("name", "permissions")
    list_display = ("name",)


class TOTPDeviceAdmin(ReadOnlyAdmin):
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)


class StaticDeviceAdmin(ReadOnlyAdmin):
    fields = ("user", "name", "confirmed", "created_at", "last_used_at", "codes_left")
    readonly_fields = ("codes_left",)
    list_display = ("user", "name", "created_at", "last_used_at", "codes_left")

    @admin.display(description="Recovery codes left")
    def codes_left(self, obj: StaticDevice) -> int:
        return obj.token_set.count()


class InvitationAdmin(ReadOnlyAdmin):
    exclude = ("token_hash",)
    list_display = ("user", "issued_by", "issued_at", "expires_at", "used_at", "voided_at")


class AccessChangeAdmin(ReadOnlyAdmin):
    list_display = ("kind", "role", "subject", "state", "proposed_by", "decided_by", "decided_at")
    list_filter = ("kind", "state")


for model, model_admin in (
    (get_user_model(), UserAdmin),
    (Group, GroupAdmin),
    (TOTPDevice, TOTPDeviceAdmin),
    (StaticDevice, StaticDeviceAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
admin.site.register(Invitation, InvitationAdmin)
admin.site.register(AccessChange, AccessChangeAdmin)
