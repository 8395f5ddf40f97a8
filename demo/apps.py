from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo-only commands (seed users, print TOTP codes, serve sandboxes).

    Installed by the demo (base) and test settings only: production cannot create demo users.
    """

    name = "demo"
