from django.urls import path

from . import views

app_name = "venues"
urlpatterns = [
    path("", views.venue_list, name="list"),
    path("new/", views.venue_edit, name="new"),
    path("<int:pk>/edit/", views.venue_edit, name="edit"),
    path("<int:pk>/check/", views.venue_check, name="check"),
]
