"""KuCoin client and sandbox tests."""
