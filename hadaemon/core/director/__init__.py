"""ldirectord-compatible director core: configuration model, health logic and wanted table (pure)."""
