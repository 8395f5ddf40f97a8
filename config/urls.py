from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config.health import healthz
from config.metrics import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("people/", include("accounts.people_urls")),
    path("venues/", include("venues.urls")),
    path("whitelist/", include("whitelist.urls")),
    path("audit/", include("oversight.urls")),
    path("notifications/", include("notifications.urls")),
    path("policy/", include("policies.urls")),
    path("admin/", admin.site.urls),
    path("", include("withdrawals.urls")),
]

# The demo's pages (sent messages): only where the demo app is installed, never in production.
if "demo" in settings.INSTALLED_APPS:
    urlpatterns.insert(-1, path("demo/", include("demo.urls")))
