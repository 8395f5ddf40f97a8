"""VenueExchange is a withdrawal's evidence and now lives in withdrawals/ (state only: its table,
rows and grants stay as they are; withdrawals 0005 takes the model over)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_lean_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="VenueExchange")],
            database_operations=[],
        )
    ]
