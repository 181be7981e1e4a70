"""Copy engines: one per migration kind, each plugged into the pool through :mod:`app.engines.base`."""
