"""Carrier adapters behind one interface (book a waybill, query, verify a push callback); see docs/fulfilment.md."""
