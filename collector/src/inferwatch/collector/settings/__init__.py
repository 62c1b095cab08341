"""The collector's settings: its TOML file, per-model settings, and changes made through the API."""
