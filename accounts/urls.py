from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("verify/", views.verify, name="verify"),
    path("enrol/", views.enrol, name="enrol"),
    path("enrol/<str:token>/", views.enrol_link, name="enrol_link"),
    path("recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
]
