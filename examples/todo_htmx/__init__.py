"""The HTMX todo example (see app.py)."""
