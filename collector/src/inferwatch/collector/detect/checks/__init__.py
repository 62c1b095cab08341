"""The built-in window checks, each a ``CheckSpec`` the collector's ``inferwatch.checks`` entry
points name (collector/pyproject.toml): ``quality`` (errors, data quality, schema, label
coverage), ``drift`` (covariate, prediction and label drift), ``outliers`` (per-row outliers with
their prediction ids) and ``performance`` (metrics from late labels)."""
