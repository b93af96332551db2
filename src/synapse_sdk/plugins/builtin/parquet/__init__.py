"""Built-in parquet export plugin: its config.yaml is beside this file."""
