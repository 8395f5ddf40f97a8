from django.urls import path

from . import views

app_name = "demo"
urlpatterns = [
    path("messages/", views.sent_messages, name="sent_messages"),
]
