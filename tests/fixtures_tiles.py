"""Session fixtures producing tile sets from real data (owned by the tiler)."""
