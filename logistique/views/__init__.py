"""Blueprints of the web pages, one per audience or capability."""
