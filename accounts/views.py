from __future__ import annotations

from urllib.parse import urlencode

import segno
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp import user_has_device

from .forms import CodeForm, SigninForm
from .services import (
    SigninThrottled,
    TotpRefused,
    signin_code_verify,
    totp_device_confirm,
    totp_device_for,
    totp_device_start_enrolment,
)
from .utils import client_ip


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = SigninForm
    redirect_authenticated_user = False

    def get_success_url(self) -> str:
        nxt = self.get_redirect_url()
        target = "accounts:verify" if user_has_device(self.request.user) else "accounts:enrol"
        url = reverse(target)
        return f"{url}?{urlencode({'next': nxt})}" if nxt else url


def _next_url(request: HttpRequest) -> str:
    nxt = request.POST.get("next") or request.GET.get("next") or ""
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return nxt
    return "/"


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Second step of login: a TOTP code from the enrolled device."""
    if request.user.is_verified():
        return redirect(_next_url(request))
    device = totp_device_for(request.user)
    if device is None:
        return redirect("accounts:enrol")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = signin_code_verify(
                user=request.user,
                code=form.cleaned_data["code"],
                ip=client_ip(request),
                request=request,
            )
        except (TotpRefused, SigninThrottled) as exc:
            form.add_error("code", str(exc))
        else:
            otp_login(request, device)
            # A new session id for the signed-in session: the one issued at the password step
            # (seen by whoever stood behind the user then) must not become it.
            request.session.cycle_key()
            return redirect(_next_url(request))
    return render(request, "accounts/verify.html", {"form": form, "next": _next_url(request)})


@login_required
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """A user without a device scans a QR code and proves it with one code."""
    if totp_device_for(request.user) is not None:
        return redirect("accounts:verify")
    device = totp_device_start_enrolment(user=request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = totp_device_confirm(
                user=request.user, code=form.cleaned_data["code"], ip=client_ip(request)
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        else:
            otp_login(request, device)
            return redirect("/")
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#0f172a")
    return render(
        request,
        "accounts/enrol.html",
        {"form": form, "qr_svg": qr_svg, "config_url": device.config_url},
    )


class LogoutView(auth_views.LogoutView):
    pass
