"""The warm worker: a Prefect worker type that starts each flow run in a child forked from a
preloaded forkserver, so a run costs milliseconds to start instead of a fresh interpreter.

``worker`` is the Prefect extension point (the ``eotasks-warm`` worker type), ``forkserver`` starts
and watches one child per flow run, ``child`` is what the forkserver preloads and what each child runs.
"""
