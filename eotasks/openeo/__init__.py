"""openEO (API 1.2, SPEC §8) over the same catalogue, raster core, flows and result store.

- ``specs``: the official process definitions, as the ``openeo-processes-dask`` package ships them.
- ``errors``: openEO's error codes and bodies.
- ``values``: how openEO's values live here (null, labeled arrays, the data cube as a ``Raster``).
- ``processes``: the process implementations, plain functions on numpy and ``Raster``.
- ``graph``: process graph validation (before any run) and evaluation (callbacks vectorised).
- ``cube``: ``load_collection`` through the catalogue and ``save_result``'s file formats.
- ``collections``: the STAC collections of the catalogue's sensors.

No HTTP and no Prefect here: the gateway's ``gateway/routes/openeo.py`` and the flow
``flows/openeo.py`` are the thin layers around it.
"""
