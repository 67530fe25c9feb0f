"""Command-line interface (``genattr``)."""
