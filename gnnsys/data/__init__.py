"""gnnsys.data."""
