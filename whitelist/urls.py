from django.urls import path

from . import views

app_name = "whitelist"
urlpatterns = [
    path("", views.address_list, name="list"),
    path("new/", views.address_new, name="new"),
    path("drift/", views.drift, name="drift"),
    path("drift/check/", views.drift_check, name="drift_check"),
    path("import/", views.address_import, name="import"),
    path("<int:pk>/", views.address_detail, name="detail"),
    path("<int:pk>/approve/", views.address_approve, name="approve"),
    path("<int:pk>/veto/", views.address_veto, name="veto"),
    path("<int:pk>/revoke/", views.address_revoke, name="revoke"),
]
