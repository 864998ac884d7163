"""gnnsys.nn."""
