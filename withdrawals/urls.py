from django.urls import path

from . import views

app_name = "withdrawals"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("withdrawals/", views.withdrawal_list, name="list"),
    path("withdrawals/new/", views.withdrawal_new, name="new"),
    path("withdrawals/new/addresses/", views.withdrawal_addresses, name="addresses"),
    path("withdrawals/new/preview/", views.withdrawal_preview, name="preview"),
    path("withdrawals/<int:pk>/", views.withdrawal_detail, name="detail"),
    path("withdrawals/<int:pk>/status/", views.withdrawal_status, name="status"),
    path("withdrawals/<int:pk>/quote/", views.withdrawal_quote, name="quote"),
    path("withdrawals/<int:pk>/approve/", views.withdrawal_approve, name="approve"),
    path("withdrawals/<int:pk>/reject/", views.withdrawal_reject, name="reject"),
    path("withdrawals/<int:pk>/cancel/", views.withdrawal_cancel, name="cancel"),
    path("withdrawals/<int:pk>/requote/", views.withdrawal_requote, name="requote"),
    path("withdrawals/attention/", views.attention, name="attention"),
    path("withdrawals/<int:pk>/resolve/", views.withdrawal_resolve, name="resolve"),
    path(
        "withdrawals/resolutions/<int:pk>/confirm/",
        views.resolution_confirm,
        name="resolution_confirm",
    ),
    path(
        "withdrawals/resolutions/<int:pk>/decline/",
        views.resolution_decline,
        name="resolution_decline",
    ),
    path(
        "withdrawals/duplicates/<int:pk>/acknowledge/",
        views.duplicate_acknowledge,
        name="duplicate_acknowledge",
    ),
]
