"""The web console (``tickrail ui``): see and steer lifetimes in a browser.

A thin caller of the lifecycle layer: ``app.create_app`` builds the ASGI app
(JSON API under ``/api``, server-rendered pages, one small script) around a
per-tenant lifecycle client; ``serve.run_console`` runs it. Needs the ``ui``
extra: ``pip install 'tickrail[ui]'``. See docs/console.md.
"""
