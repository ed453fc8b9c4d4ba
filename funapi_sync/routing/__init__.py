"""Routing: path syntax, registration checks, routers, and the table that matches a request.

``options`` (what a route declares), ``checks`` (what registration refuses), ``router``
(the decorators and ``Router``), ``table`` (the ``RouteTable``: each rule built once,
matched in time linear in the path). Import the part you need; this package imports none,
so the route record can use ``checks`` and ``options`` without an import circle.
"""
