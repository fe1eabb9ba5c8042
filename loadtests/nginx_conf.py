"""The nginx main configuration shared by the benchmarks and the tests that run nginx
(the HTTP anchor, the stapling server, the CDN edge): a foreground nginx confined to one
directory, with the given `http {}` contents."""

import os
from pathlib import Path


def main_conf(
    directory: Path, http_body: str, *, worker_connections: int = 256, error_log: str = "info"
) -> str:
    # nginx drops to "nobody" when started as root, which cannot read the test's files.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log {error_log};
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
{http_body}
}}
"""
