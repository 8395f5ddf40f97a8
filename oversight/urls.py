from django.urls import path

from . import views

# The namespace stays "audit": the pages kept their /audit/ paths and every link its name.
app_name = "audit"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("events/", views.event_list, name="events"),
    path("whitelist/", views.whitelist_history, name="whitelist"),
    path("withdrawals/<int:pk>/evidence/", views.evidence, name="evidence"),
    path("withdrawals/<int:pk>/evidence.json", views.evidence_json, name="evidence_json"),
    path("export/<slug:dataset>.<slug:fmt>", views.export, name="export"),
    path("checkpoint.json", views.checkpoint_download, name="checkpoint"),
]
