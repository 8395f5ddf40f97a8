from django.urls import path

from . import views

app_name = "venues"
urlpatterns = [
    path("", views.venue_list, name="list"),
    path("new/", views.venue_edit, name="new"),
    path("<int:pk>/edit/", views.venue_edit, name="edit"),
    path("<int:pk>/check/", views.venue_check, name="check"),
    path("<int:pk>/enabled/", views.venue_enabled, name="enabled"),
    path("changes/<int:pk>/", views.change_detail, name="change"),
    path("changes/<int:pk>/approve/", views.change_approve, name="change_approve"),
    path("changes/<int:pk>/reject/", views.change_reject, name="change_reject"),
]
