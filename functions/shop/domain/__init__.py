"""Business rules: money, SKUs and their stock, orders and their lifecycle. No AWS here."""
