"""One router per resource: tasks, croppers, scene search, downloads, operations."""
