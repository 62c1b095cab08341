"""The collector's HTTP routes other than OTLP ingest (docs/http-api.md)."""
