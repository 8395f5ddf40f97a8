from django.urls import path

from . import people_views as views

app_name = "people"
urlpatterns = [
    path("", views.people, name="list"),
    path("invite/", views.invite, name="invite"),
    path("access-review/", views.access_review, name="access_review"),
    path("<int:pk>/enrolment-link/", views.enrolment_link, name="enrolment_link"),
    path("<int:pk>/propose/", views.propose, name="propose"),
    path("<int:pk>/deactivate/", views.deactivate, name="deactivate"),
    path("changes/<int:pk>/approve/", views.approve, name="approve"),
    path("changes/<int:pk>/reject/", views.reject, name="reject"),
]
