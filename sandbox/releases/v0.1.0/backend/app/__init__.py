"""OpenWatch backend (sandbox edition)."""
