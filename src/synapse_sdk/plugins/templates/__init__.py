"""``synapse plugin create``: scaffolds a plugin folder from the templates beside this file."""

from __future__ import annotations

import re
from pathlib import Path

from synapse_sdk.errors import ParamsError
from synapse_sdk.plugins.enums import PluginCategory

TEMPLATES = Path(__file__).parent
SUFFIX = '.tmpl'


def scaffold(name: str, category: str, directory: Path) -> Path:
    """Create ``directory/name`` from the category's template; return the folder."""
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_\-]{0,63}', name or ''):
        raise ParamsError(
            'Invalid plugin name',
            [('name', 'start with a letter; letters, digits, - and _ only (64 at most)')],
        )
    try:
        PluginCategory(category)
    except ValueError:
        allowed = ', '.join(c.value for c in PluginCategory)
        raise ParamsError('Invalid category', [('category', f'one of: {allowed}')]) from None
    source = TEMPLATES / category
    if not source.is_dir():
        available = ', '.join(sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir()))
        raise ParamsError('No template', [('category', f'templates exist for: {available}')])
    target = Path(directory) / name
    if target.exists():
        raise ParamsError('Plugin folder exists', [('name', f'{target} already exists')])
    code = re.sub(r'[^a-z0-9_]', '_', name.lower())
    values = {'{{name}}': name, '{{code}}': code}
    for path in sorted(source.rglob(f'*{SUFFIX}')):
        rel = path.relative_to(source).with_suffix('')
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding='utf-8')
        for key, value in values.items():
            text = text.replace(key, value)
        dest.write_text(text, encoding='utf-8')
    return target
