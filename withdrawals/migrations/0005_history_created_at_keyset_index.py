"""History date ranges and amount filters on PostgreSQL (issue 12).

A date range pages on (created_at, id), so one index serves the range and the order; it also
serves every other range on created_at, so the single-column index goes (one index fewer to
write per withdrawal).

The amount filter has its index (0004) but the planner did not choose it: with the default 100
histogram buckets it estimated 500 of 100,000 rows at or above 1,000,000 where there was one, and
walked every id backwards instead. A finer histogram on amount gives it the real count.
"""

from django.db import migrations, models

AMOUNT_STATISTICS = 10000  # PostgreSQL's maximum; ANALYZE then samples up to 3M rows.


def finer_amount_statistics(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE withdrawals_withdrawalrequest "
        f"ALTER COLUMN amount SET STATISTICS {AMOUNT_STATISTICS}"
    )


def default_amount_statistics(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE withdrawals_withdrawalrequest ALTER COLUMN amount SET STATISTICS -1"
    )


class Migration(migrations.Migration):
    dependencies = [("withdrawals", "0004_search_and_filter_indexes")]

    operations = [
        migrations.AddIndex(
            model_name="withdrawalrequest",
            index=models.Index(fields=["-created_at", "-id"], name="withdrawal_created_id_idx"),
        ),
        migrations.AlterField(
            model_name="withdrawalrequest",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True),
        ),
        migrations.RunPython(finer_amount_statistics, default_amount_statistics),
    ]
