"""Indexes for the history filters that walked the whole table on PostgreSQL (issue 12).

They match the SQL Django writes for the filters of withdrawals.selectors: ``icontains`` and
``iexact`` compile to ``UPPER(col::text)``, so the indexes are on that expression. Trigram
(pg_trgm, a trusted extension the database owner may create) serves substring search. They are
PostgreSQL-only and not part of the model state: SQLite (the demo) has no such index types.
"""

from django.db import migrations

TABLE = "withdrawals_withdrawalrequest"
INDEXES = {
    "withdrawal_address_trgm": f"{TABLE} USING gin (UPPER(address::text) gin_trgm_ops)",
    "withdrawal_reference_trgm": f"{TABLE} USING gin (UPPER(venue_reference::text) gin_trgm_ops)",
    "withdrawal_note_trgm": f"{TABLE} USING gin (UPPER(note::text) gin_trgm_ops)",
    # The asset filter is case-insensitive (asset__iexact).
    "withdrawal_asset_upper_id_idx": f"{TABLE} (UPPER(asset::text), id DESC)",
    "withdrawal_amount_idx": f"{TABLE} (amount)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("withdrawals", "0003_submission_lease_and_attention")]

    operations = [migrations.RunPython(create, drop)]
