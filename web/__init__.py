"""The web workspace: server-rendered pages (Jinja2) for inboxes, loop timelines, queue screens,
the critical-value board and manager dashboards (R4.4.4, R6.2.2, R7.1, R8.7, R9.1.3).

No SPA build: each page is HTML from the server; the live parts (queue screen, critical
board, clocks) are one small script in `web/static/app.js`. Pages sit on the API's own
sessions, permissions and audit trail (`web.auth`), mounted by `web.router.mount`.
"""
