"""Built-in cvat export plugin: its config.yaml is beside this file."""
