"""The local run: the whole API on 127.0.0.1 against local stand-ins for AWS (never deployed)."""
