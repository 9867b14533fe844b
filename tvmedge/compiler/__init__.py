"""Relax module -> executable for a board -> artifact directory (library + manifest)."""
