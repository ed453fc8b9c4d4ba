"""Serve ``matrix_app`` with the standard library's ``wsgiref`` (port from argv[1])."""

import sys
from wsgiref.simple_server import make_server

from matrix_app import app

with make_server("127.0.0.1", int(sys.argv[1]), app) as server:
    server.serve_forever()
