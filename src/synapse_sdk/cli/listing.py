"""``synapse project list`` and ``synapse gt list``: what exists, so nobody guesses ids.

On a terminal the rows are a table; piped, tab-separated lines with a header (for ``cut`` and
``awk``); ``--json`` prints them as a JSON array. Counts come from the same client calls an
export makes, so they are the numbers an export of that project or version would see.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from synapse_sdk.cli.common import default_client_factory, print_result, reported_errors

__all__ = ['gt_app', 'project_app', 'render_rows']

project_app = typer.Typer(help='Projects: ids, titles, classes and counts.', no_args_is_help=True)
gt_app = typer.Typer(
    help='Ground-truth dataset versions: ids, names, projects and counts.', no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option('--json', help='Print the rows as a JSON array')]
GT_SPLITS = ('train', 'validation', 'test')


def render_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    as_json: bool,
    title: str,
    empty: str,
) -> None:
    """Print ``rows``: JSON, a rich table (stdout is a terminal) or tab-separated lines."""
    if as_json:
        print_result(list(rows))
        return
    if not rows:
        typer.echo(empty, err=True)
        return
    if sys.stdout.isatty():
        table = Table(title=title, title_justify='left')
        for key, header in columns:
            numeric = all(isinstance(r.get(key), int) for r in rows)
            table.add_column(header, justify='right' if numeric else 'left', no_wrap=numeric)
        for row in rows:
            table.add_row(*(_cell(row.get(key)) for key, _ in columns))
        Console().print(table)
        return
    lines = ['\t'.join(header.lower().replace(' ', '_') for _, header in columns)]
    for row in rows:
        lines.append('\t'.join(_cell(row.get(key)).replace('\t', ' ') for key, _ in columns))
    sys.stdout.write('\n'.join(lines) + '\n')


def _cell(value: Any) -> str:
    if value is None:
        return ''
    if isinstance(value, int) and not isinstance(value, bool):
        return f'{value}'
    return str(value)


@project_app.command('list')
def list_projects(as_json: JsonOption = False) -> None:
    """List projects with their classes and how many tasks, assignments and ground-truth
    versions each has (the ids `synapse export --project` takes)."""
    with reported_errors():
        client = default_client_factory()()
        try:
            versions: dict[int, int] = {}
            for version in client.list_ground_truth_versions():
                project = version.get('project')
                if isinstance(project, int):
                    versions[project] = versions.get(project, 0) + 1
            rows = []
            for project in client.list_projects():
                pid = int(project['id'])
                classes = (project.get('configuration') or {}).get('classes') or []
                rows.append(
                    {
                        'id': pid,
                        'title': project.get('title'),
                        'classes': len(classes),
                        'tasks': client.count_tasks({'project': pid}),
                        'assignments': client.count_assignments({'project': pid}),
                        'gt_versions': versions.get(pid, 0),
                        'class_names': [c.get('name') for c in classes],
                    }
                )
        finally:
            client.close()
    render_rows(
        rows,
        [
            ('id', 'ID'),
            ('title', 'Title'),
            ('classes', 'Classes'),
            ('tasks', 'Tasks'),
            ('assignments', 'Assignments'),
            ('gt_versions', 'GT versions'),
        ],
        as_json=as_json,
        title='Projects',
        empty='No projects. Create the demo with: synapse demo',
    )


@gt_app.command('list')
def list_gt_versions(
    project: Annotated[
        int | None, typer.Option('--project', metavar='ID', help='Only this project')
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List ground-truth dataset versions with their project and how many events each has per
    split (the ids `synapse export --target ground_truth --gt-version` takes)."""
    with reported_errors({'project': '--project'}):
        client = default_client_factory()()
        try:
            titles = {int(p['id']): p.get('title') for p in client.list_projects()}
            if project is not None and project not in titles:
                from synapse_sdk.errors import ParamsError

                known = ', '.join(str(i) for i in sorted(titles)) or 'none'
                raise ParamsError(
                    'Unknown project', [('project', f'no project with id {project} (ids: {known})')]
                )
            rows = []
            for version in client.list_ground_truth_versions(project):
                vid = int(version['id'])
                dataset = version.get('ground_truth_dataset') or {}
                key = {'ground_truth_dataset_version': vid}
                row = {
                    'id': vid,
                    'name': version.get('name'),
                    'dataset': dataset.get('name'),
                    'project': version.get('project'),
                    'project_title': titles.get(version.get('project')),
                    'events': client.count_ground_truth_events(key),
                }
                for split in GT_SPLITS:
                    row[split] = client.count_ground_truth_events({**key, 'category': split})
                rows.append(row)
        finally:
            client.close()
    render_rows(
        rows,
        [
            ('id', 'ID'),
            ('name', 'Version'),
            ('dataset', 'Dataset'),
            ('project', 'Project'),
            ('project_title', 'Project title'),
            ('events', 'Events'),
            *((split, split.capitalize()) for split in GT_SPLITS),
        ],
        as_json=as_json,
        title='Ground-truth dataset versions',
        empty='No ground-truth dataset versions'
        + (f' in project {project}' if project is not None else ''),
    )
