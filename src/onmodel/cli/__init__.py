"""The command line: a thin layer of Typer commands over :class:`onmodel.studio.Studio`."""
