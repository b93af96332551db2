"""The store's SQLite schema and the SELECTs of the three list targets.

Each list target's index holds what an export's light listings read (``filters.py``): the
key, the data unit, status and creation time the selection is planned from, and how many
annotations the record's document lists, an expression SQLite reads from the index instead of
parsing every document. With ``files_name`` the plan's listing and a sharded export's listing
of file names never touch the tables' rows: at 100,000 tasks about 0.10 s and 0.2 s of SQLite,
against 0.18 s and 0.56 s with the key indexes alone.
"""

from __future__ import annotations

__all__ = ['FROM_COUNT', 'REPLACED_INDEXES', 'SCHEMA', 'SELECT']

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
  id INTEGER PRIMARY KEY, title TEXT NOT NULL, configuration TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS data_units (
  id INTEGER PRIMARY KEY, project INTEGER NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
  width INTEGER, height INTEGER, created TEXT NOT NULL, source_id INTEGER);
CREATE TABLE IF NOT EXISTS files (
  id INTEGER PRIMARY KEY, data_unit INTEGER NOT NULL REFERENCES data_units(id), key TEXT NOT NULL,
  path TEXT, file_name_original TEXT NOT NULL, is_primary INTEGER NOT NULL, size INTEGER,
  checksum TEXT, UNIQUE (data_unit, key));
CREATE INDEX IF NOT EXISTS files_name
  ON files (data_unit, is_primary DESC, key, file_name_original);
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY, project INTEGER NOT NULL REFERENCES projects(id),
  data_unit INTEGER NOT NULL REFERENCES data_units(id), status TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_listing
  ON tasks (project, id, data_unit, status, created, json_array_length(data, '$.annotations'));
CREATE TABLE IF NOT EXISTS assignments (
  id INTEGER PRIMARY KEY, project INTEGER NOT NULL REFERENCES projects(id),
  task INTEGER NOT NULL REFERENCES tasks(id), user INTEGER, status TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '[]', created TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS assignments_listing
  ON assignments (project, id, task, status, created, json_array_length(data, '$.annotations'));
CREATE INDEX IF NOT EXISTS assignments_task ON assignments (task);
CREATE TABLE IF NOT EXISTS ground_truth_datasets (
  id INTEGER PRIMARY KEY, project INTEGER NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
  created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ground_truth_dataset_versions (
  id INTEGER PRIMARY KEY, dataset INTEGER NOT NULL REFERENCES ground_truth_datasets(id),
  name TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ground_truth_events (
  pgh_id INTEGER PRIMARY KEY, id INTEGER NOT NULL,
  version INTEGER NOT NULL REFERENCES ground_truth_dataset_versions(id), category TEXT,
  data_unit INTEGER NOT NULL REFERENCES data_units(id), created TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gt_events_listing ON ground_truth_events (
  version, pgh_id, data_unit, created, json_array_length(data, '$.annotations'));
CREATE TABLE IF NOT EXISTS storages (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, provider TEXT NOT NULL, configuration TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, data TEXT NOT NULL, updated TEXT);
CREATE TABLE IF NOT EXISTS job_logs (
  id INTEGER PRIMARY KEY, job INTEGER, created TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS job_logs_job ON job_logs (job, id);
"""

#: Indexes of older homes that the listing indexes above replace (a prefix of theirs).
REPLACED_INDEXES = ('tasks_project', 'assignments_project', 'gt_events_version')

# Columns each list target selects; ``t`` is the task (assignments join their task).
SELECT = {
    'assignment': 'SELECT r.id, r.project, r.task, r.user, r.status, r.tags, r.created, '
    't.data_unit, r.data FROM assignments r JOIN tasks t ON t.id = r.task',
    'task': 'SELECT r.id, r.project, r.status, r.tags, r.created, r.data_unit, r.data FROM tasks r',
    'ground_truth_event': 'SELECT r.id, r.pgh_id, r.version AS ground_truth_dataset_version, '
    'r.category, r.created, r.data_unit, r.data FROM ground_truth_events r',
}
FROM_COUNT = {
    'assignment': 'FROM assignments r JOIN tasks t ON t.id = r.task',
    'task': 'FROM tasks r',
    'ground_truth_event': 'FROM ground_truth_events r',
}
