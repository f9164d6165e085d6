"""platformctl: the Typer CLI that installs, runs and manages Ovation."""
