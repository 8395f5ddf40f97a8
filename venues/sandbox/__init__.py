"""Stateful emulators of the venues' APIs, shared machinery.

Each venue's sandbox lives beside its client (``venues/<kind>/sandbox.py``) and subclasses
:class:`venues.sandbox.app.SandboxApp`. State lives in one SQLite file (:mod:`.store`) so the web
process, the worker and a loopback server all see the same balances and withdrawals.
"""
