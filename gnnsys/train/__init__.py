"""gnnsys.train."""
