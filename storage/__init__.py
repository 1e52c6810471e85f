"""Storage: connection pools, the migration runner and one module per table family.

Each module here is the only place the SQL of its tables lives; callers get
frozen dataclasses back and domain errors (`storage.errors`), never psycopg's.
"""
