"""Wire-format adapters, one module per channel: parse, verify, send; never decide."""
