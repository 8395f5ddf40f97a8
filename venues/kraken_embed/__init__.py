"""Kraken Embed (B2B) withdrawals: client and sandbox."""
