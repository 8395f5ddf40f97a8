from django.urls import path

from . import views

app_name = "policies"
urlpatterns = [
    path("", views.policy_page, name="policy"),
    path("propose/", views.policy_propose, name="propose"),
    path("prices/", views.prices_page, name="prices"),
    path("prices/propose/", views.prices_propose, name="prices_propose"),
    path("proposals/<int:pk>/approve/", views.proposal_approve, name="approve"),
    path("proposals/<int:pk>/decline/", views.proposal_decline, name="decline"),
]
