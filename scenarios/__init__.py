"""fulldisk's chaos scenarios: pytest files marked ``chaos`` (run with ``pytest -m chaos``)."""
