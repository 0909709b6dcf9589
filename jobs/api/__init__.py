"""The REST API (``/api/v1/``): thin views over ``jobs.services`` and ``jobs.selectors``."""
