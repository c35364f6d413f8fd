"""One Prefect flow per task type; each reads like the DAG it runs."""
