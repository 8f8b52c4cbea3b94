"""The `posture` command line."""
