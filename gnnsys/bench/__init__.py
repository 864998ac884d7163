"""gnnsys.bench."""
