"""The same three scenarios, written idiomatically for each framework.

Every module exposes ``create_app(task_seconds=0.0)`` and ``app = create_app()``; gunicorn
loads either (``benchmarks.apps.flask_app:create_app(1.0)`` for the slow-task server).
"""
