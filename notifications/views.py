"""The notification settings page and the top bar's waiting count."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from . import selectors, services
from .models import Kind

# The top bar asks this often (seconds); its requests carry the poll flag
# (config.middleware.POLL_FLAG) so that they do not keep an idle session alive.
WAITING_POLL_SECONDS = 45


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        services.preferences_save(
            user=request.user, choices={kind: request.POST.getlist(kind) for kind in Kind.values}
        )
        messages.success(request, "Your notification settings are saved.")
        return redirect("notifications:preferences")
    return render(
        request,
        "notifications/preferences.html",
        {
            "choices": selectors.preferences_for(user=request.user),
            "webhooks": [hook["name"] for hook in settings.NOTIFY_WEBHOOKS],
        },
    )


@login_required
@require_GET
def waiting(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "notifications/_waiting_badge.html",
        {"waiting": selectors.waiting_for(user=request.user), "poll_seconds": WAITING_POLL_SECONDS},
    )
