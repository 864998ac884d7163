"""gnnsys.comm."""
