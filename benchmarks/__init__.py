"""Benchmarks of funapi_sync against Flask, Falcon and a raw WSGI callable (issue #7)."""
