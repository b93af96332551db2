"""Built-in export plugins, one folder (config.yaml) per format code."""
