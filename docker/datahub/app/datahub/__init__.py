"""datahub: the fulldisk reference stack, an Exversion-like data site.

nginx -> gunicorn/Flask (``datahub.web``), a cleaner (``datahub.cleaner``) and
SQLite (``datahub.db``). Hardened by default; ``DATAHUB_DEFECTS`` switches on
the real bugs of the Exversion outage (see docker/README.md).
"""
