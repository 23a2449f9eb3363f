"""Use cases: each reads what it needs, applies domain rules, and commits one transaction."""
