"""Nord-Pay: static X-API-KEY, two-step withdraw request/confirm (NOTES.md §5)."""
