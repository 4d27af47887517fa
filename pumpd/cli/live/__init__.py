"""pumpctl's live commands: they talk to a running pumpd over the control socket.

``common`` holds the connection and error handling shared by every command, ``render`` the
rich views (status, watch, plans), ``login`` the staff token file, and ``session``/``staff``
/``reads`` the click commands that :mod:`pumpd.cli.pumpctl` adds to its group.
"""
