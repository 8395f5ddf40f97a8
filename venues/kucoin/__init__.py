"""KuCoin: withdrawals through /api/v3/withdrawals, signed with KC-API-* headers."""
