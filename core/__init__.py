"""Floor 0: what every other app may use and which imports none of them."""
