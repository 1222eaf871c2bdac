"""Thin HTTP handlers, one module per resource: parse and validate input, call a service, shape JSON.

`tables.TABLES` lists them; importing this package alone imports none of them.
"""
