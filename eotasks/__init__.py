"""eotasks: satellite scenes in, answers out.

The plain-Python core shared by the gateway, the Prefect flows and the CLI: settings, request
models, the database, the scene catalogue and the raster maths. Nothing here imports Prefect.
"""

__version__ = "0.1.0"
