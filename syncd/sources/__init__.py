"""What to fetch from Graph, per source family: directory delta rounds, the account, Intune polls."""
