"""Campaigns: many runs of drawn programs, and what is done with their failures.

``_campaign`` (``fuzz``: search, deduplicate, minimise, save), ``_minimise`` (the schedule and
program shrinker), ``_check`` (``lockfuzz.check`` inside a user's ``@given``), ``_workers``,
``_shards`` and ``_dask`` (more cores, more machines), ``_coverage`` and ``_features`` (what the
campaign reached in the target). Private: the public API is ``lockfuzz``.
"""
