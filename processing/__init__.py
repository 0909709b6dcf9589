"""What jobs do: one module per pipeline, registered as job types when the app loads."""
