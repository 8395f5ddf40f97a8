"""The application's URLs plus the bench-only admin site under /bench-admin/."""

from django.urls import path

from config.urls import urlpatterns as app_urlpatterns

from .admin import site

urlpatterns = [path("bench-admin/", site.urls), *app_urlpatterns]
