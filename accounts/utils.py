from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    # Behind a proxy, configure it to set REMOTE_ADDR (gunicorn --forwarded-allow-ips);
    # X-Forwarded-For is client-controlled and never trusted here.
    return request.META.get("REMOTE_ADDR") or None
