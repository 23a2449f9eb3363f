"""Provider statements for daily reconciliation: one client per provider behind `StatementSource`
(statements.py), each fetching, verifying and normalizing that provider's file for one business day."""
