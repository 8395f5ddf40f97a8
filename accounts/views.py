"""Sign-in (password, then TOTP or a recovery code), enrolment through a single-use link, and
new recovery codes. Thin: parse input, call a service, render a page or a partial."""

from __future__ import annotations

from urllib.parse import urlencode

import segno
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import login as otp_login
from django_otp import user_has_device

from core.forms import apply_service_error

from .forms import CodeForm, EnrolForm, SigninForm, TotpForm
from .selectors import invitation_open_get
from .services import (
    PeopleError,
    SigninThrottled,
    TotpRefused,
    enrolment_config_url,
    enrolment_confirm,
    enrolment_secret_new,
    recovery_codes_regenerate,
    signin_code_verify,
    totp_device_for,
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
    """Second step of login: a TOTP code from the enrolled device, or a recovery code."""
    if request.user.is_verified():
        return redirect(_next_url(request))
    if totp_device_for(request.user) is None:
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
@require_GET
def enrol(request: HttpRequest) -> HttpResponse:
    """Signed in with a password but no authenticator: a device comes only through a link a
    user admin issues, never from knowing the password."""
    if totp_device_for(request.user) is not None:
        return redirect("accounts:verify")
    return render(request, "accounts/enrol.html")


def _secret_key(invitation_pk: int) -> str:
    return f"enrolment_secret:{invitation_pk}"


@never_cache
@require_http_methods(["GET", "POST"])
def enrol_link(request: HttpRequest, token: str) -> HttpResponse:
    """The single-use enrolment link. The TOTP secret is made for this browser session only and
    saved as a device when a code proves it; the link then stops working."""
    invitation = invitation_open_get(token=token)
    if invitation is None:
        return render(request, "accounts/enrol_link.html", {"invalid": True}, status=404)
    user = invitation.user
    new_person = not user.has_usable_password()
    secret = request.session.get(_secret_key(invitation.pk))
    if secret is None:
        secret = request.session[_secret_key(invitation.pk)] = enrolment_secret_new()
    form = EnrolForm(request.POST or None, new_person=new_person)
    if request.method == "POST" and form.is_valid():
        try:
            enrolled = enrolment_confirm(
                token=token,
                secret=secret,
                code=form.cleaned_data["code"],
                password=form.cleaned_data["password"],
                password_again=form.cleaned_data.get("password_again", ""),
                ip=client_ip(request),
            )
        except PeopleError as exc:
            apply_service_error(form, exc)
            if invitation_open_get(token=token) is None:
                return render(
                    request,
                    "accounts/enrol_link.html",
                    {"invalid": True, "form": form},
                    status=404,
                )
        else:
            request.session.pop(_secret_key(invitation.pk), None)
            auth_login(request, enrolled.user, backend=settings.AUTHENTICATION_BACKENDS[0])
            otp_login(request, enrolled.device)
            return render(
                request,
                "accounts/recovery_codes.html",
                {"codes": enrolled.recovery_codes, "enrolled": True},
            )
    config_url = enrolment_config_url(user=user, secret=secret)
    return render(
        request,
        "accounts/enrol_link.html",
        {
            "form": form,
            "person": user,
            "new_person": new_person,
            "expires_at": invitation.expires_at,
            "config_url": config_url,
            "qr_svg": segno.make(config_url, error="m").svg_inline(scale=5, dark="#0f172a"),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """New recovery codes, shown once, for a signed-in person who proves their device."""
    form = TotpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = recovery_codes_regenerate(
                user=request.user, code=form.cleaned_data["code"], ip=client_ip(request)
            )
        except TotpRefused as exc:
            form.add_error("code", str(exc))
        else:
            return render(request, "accounts/recovery_codes.html", {"codes": codes})
    return render(
        request,
        "accounts/recovery_codes.html",
        {"form": form},
        status=400 if form.is_bound and form.errors else 200,
    )


class LogoutView(auth_views.LogoutView):
    pass
