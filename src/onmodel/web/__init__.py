"""Seeing a series as pictures: the HTML shared by ``onmodel export`` and ``onmodel serve``.

``onmodel.presentation`` (outside this package, since the export uses it too) turns images and
lineage trees into plain view models and renders them with an autoescaping Jinja environment
(separate from the prompt composer's, which must never escape). ``app`` is the local web UI
as a WSGI application; ``server`` runs it on the standard library's threaded WSGI server.
Beside them: ``jobs`` runs shots and retries in the background, ``cache`` keeps a long
session's lineage and totals between requests, ``forms`` says what a new-shot form may
choose, and ``uploads`` reads an uploaded picture as it comes.
Nothing here is imported by the rest of onmodel unless asked for, so the CLI stays quick to
start.
"""
