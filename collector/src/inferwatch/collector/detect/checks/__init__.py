"""Window checks: each module registers its checks with ``inferwatch.collector.detect.evaluate``.

``quality`` (errors, data quality, schema, label coverage), ``drift`` (covariate, prediction and
label drift), ``outliers`` (per-row outliers with their prediction ids) and ``performance``
(metrics from late labels). The modules are listed in ``evaluate.CHECK_MODULES``.
"""
