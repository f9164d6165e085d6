"""`platformctl dashboard`: a snapshot of the running appliance, collected cheaply, rendered purely.

`collect.collect_snapshot` reads the figures (Redis statistics every second, SQL only every few
seconds), `render.render` turns a snapshot into a rich renderable with no I/O, and the CLI
command draws it full screen.
"""
