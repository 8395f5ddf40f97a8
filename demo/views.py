"""The demo's mailbox: the email the demo would have sent the signed-in person (the console
shows the same messages as the worker sends them)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from notifications.selectors import sent_emails_for


@login_required
@require_GET
def sent_messages(request: HttpRequest) -> HttpResponse:
    return render(
        request, "demo/sent_messages.html", {"deliveries": sent_emails_for(user=request.user)}
    )
