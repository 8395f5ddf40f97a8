"""VenueExchange moves here from audit/ (state only): the table ``audit_venueexchange`` and
every row in it stay untouched."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("withdrawals", "0007_fee_charged_and_venue_error_code"),
        ("audit", "0006_venue_exchange_moves_to_withdrawals"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="VenueExchange",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("purpose", models.CharField(max_length=20)),
                        ("started_at", models.DateTimeField()),
                        ("method", models.CharField(max_length=10)),
                        ("url", models.CharField(max_length=500)),
                        ("request_headers", models.JSONField(default=dict)),
                        ("request_body", models.TextField(blank=True)),
                        ("status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                        ("response_headers", models.JSONField(default=dict)),
                        ("response_body", models.TextField(blank=True)),
                        ("error", models.CharField(blank=True, max_length=300)),
                        (
                            "withdrawal",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="venue_exchanges",
                                to="withdrawals.withdrawalrequest",
                            ),
                        ),
                    ],
                    options={"db_table": "audit_venueexchange", "ordering": ["started_at", "id"]},
                )
            ],
            database_operations=[],
        )
    ]
