"""Imported only by the probe-late-import flow, so a warm child must report it as not preloaded."""
