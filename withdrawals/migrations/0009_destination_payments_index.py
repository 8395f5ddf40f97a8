from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("withdrawals", "0008_venue_exchange_from_audit"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="withdrawalrequest",
            index=models.Index(
                condition=models.Q(
                    (
                        "state__in",
                        ("approved", "submitting", "submitted", "completed", "outcome_unknown"),
                    )
                ),
                fields=["whitelisted_address", "asset", "-id"],
                name="withdrawal_released_to_idx",
            ),
        ),
    ]
