"""The collector's process: the HTTP app (OTLP ingest, API, metrics, dashboard) and its command."""
