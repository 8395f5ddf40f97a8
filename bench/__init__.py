"""`make bench`: seeds PostgreSQL at scale and measures DESIGN.md's performance targets against
the Django admin changelist of the same rows (see docs/bench.md)."""
