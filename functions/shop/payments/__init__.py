"""Payment providers behind one interface, selected by name."""
