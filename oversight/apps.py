from django.apps import AppConfig


class OversightConfig(AppConfig):
    """The auditors' pages: history, evidence, exports and charts over every domain."""

    name = "oversight"
