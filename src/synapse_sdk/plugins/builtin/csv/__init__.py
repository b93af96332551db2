"""Built-in csv export plugin: its config.yaml is beside this file."""
