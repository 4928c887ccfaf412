"""Offline stand-in for Kensa's ``runner`` package: only ``runner.paths``.

The OpenWatch backend (April and June 2026) imports ``runner.paths`` for Kensa's health
(``GET /api/scans/kensa/health``: ``get_version``, ``get_rules_path``) and for the rule reference
(``app/services/rule_reference_service.py``: ``get_rules_path``, whose YAML files it reads itself).
Nothing else of Kensa is here: ``runner.engine``, ``runner.mappings``, ``runner._loading`` and the
rest stay missing, so scans and remediations fail with the ImportError the backend already handles.
"""
