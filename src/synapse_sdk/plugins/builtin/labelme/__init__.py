"""Built-in labelme export plugin: its config.yaml is beside this file."""
