"""The peer: the changelists a team would get by registering the same models in the admin."""

from django.contrib import admin

from audit.models import AuditEvent
from withdrawals.models import WithdrawalRequest

site = admin.AdminSite(name="benchadmin")


class WithdrawalAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "venue", "asset", "amount", "state", "requested_by")
    list_filter = ("state", "venue", "asset")
    search_fields = ("address", "venue_reference", "note")
    date_hierarchy = "created_at"


class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("seq", "created_at", "actor_name", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")


site.register(WithdrawalRequest, WithdrawalAdmin)
site.register(AuditEvent, AuditEventAdmin)
