"""Built-in dm export plugin: its config.yaml is beside this file."""
