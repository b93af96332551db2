"""Built-in voc export plugin: its config.yaml is beside this file."""
