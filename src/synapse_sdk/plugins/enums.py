"""Enumerations shared by every plugin."""

from __future__ import annotations

from enum import StrEnum


class PluginCategory(StrEnum):
    """What kind of work a plugin's actions do. ``config.yaml``'s ``category`` is one of these."""

    EXPORT = 'export'
    UPLOAD = 'upload'
    NEURAL_NET = 'neural_net'
    SMART_TOOL = 'smart_tool'
    PRE_ANNOTATION = 'pre_annotation'
    POST_ANNOTATION = 'post_annotation'
    DATA_VALIDATION = 'data_validation'
    CUSTOM = 'custom'


class RunMethod(StrEnum):
    """How the platform runs an action."""

    JOB = 'job'
    TASK = 'task'
    RESTAPI = 'restapi'


class AnnotationType(StrEnum):
    """Kinds of data an action handles (``config.yaml``'s ``annotation_types``).

    A data unit's kind is the name of its primary file without the number (``image_1`` ->
    ``image``).
    """

    IMAGE = 'image'
    VIDEO = 'video'
    AUDIO = 'audio'
    TEXT = 'text'
    PCD = 'pcd'
    PROMPT = 'prompt'
