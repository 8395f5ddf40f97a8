from django.db.models import QuerySet

from .models import Venue


def venues_all() -> QuerySet[Venue]:
    return Venue.objects.order_by("name")
