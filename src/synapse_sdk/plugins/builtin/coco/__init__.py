"""Built-in coco export plugin: its config.yaml is beside this file."""
