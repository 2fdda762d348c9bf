"""How users start lockfuzz: ``_cli`` (the ``lockfuzz`` command), ``_scale_cli`` (``--workers``,
``--shard``, ``--dask`` and ``lockfuzz merge``) and ``_pytest_plugin`` (the pytest plugin and its
marker). Private: the public API is ``lockfuzz``.
"""
