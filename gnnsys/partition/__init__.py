"""gnnsys.partition."""
