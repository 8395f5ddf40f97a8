from django.urls import path

from . import views

app_name = "withdrawals"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
