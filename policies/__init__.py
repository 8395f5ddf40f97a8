"""The withdrawal policy: versioned rules and reference prices, changed under four eyes.

Floor 3, below ``withdrawals``: it imports accounts, audit, venues and whitelist only, so
``withdrawals`` can consult it when a withdrawal is requested and approved. What needs to count
withdrawals (velocity, red flags, the approval panel) lives in ``withdrawals.policy``.
"""
