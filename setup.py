from setuptools import setup

# Metadata and dependencies live in setup.cfg.
setup()
