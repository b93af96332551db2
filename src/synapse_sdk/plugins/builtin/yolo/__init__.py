"""Built-in yolo export plugin: its config.yaml is beside this file."""
