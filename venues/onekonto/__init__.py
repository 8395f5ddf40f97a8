"""1Konto / 1KPrime: JWT login, blockchain withdraw requests and their query endpoint."""
