"""Production servers: ``from funapi_sync.server import gunicorn``."""
