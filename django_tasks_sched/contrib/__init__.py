"""Optional integrations, each in its own sub-package with its own extra."""
