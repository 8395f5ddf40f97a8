"""Kraken spot funding API (``/0/private/Withdraw*``): client and sandbox."""
