"""Published registry packages run as models."""
