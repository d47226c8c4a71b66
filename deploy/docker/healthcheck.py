"""The image's HEALTHCHECK: healthy when one of this container's endpoints answers 2xx (no curl in slim images).

Without arguments it tries the API's liveness endpoint (``http://127.0.0.1:$PORT/health``) and then the
metrics endpoint of a worker or scheduler (``http://127.0.0.1:$JOBS_METRICS_PORT/metrics``), so the one
image checks whichever process it runs. Arguments replace that list of URLs.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

TIMEOUT_SECONDS = 3.0


def default_urls(environ: Mapping[str, str]) -> list[str]:
    urls = [f"http://127.0.0.1:{environ.get('PORT', '8000')}/health"]
    metrics_port = environ.get("JOBS_METRICS_PORT", "9100")
    if metrics_port != "0":
        urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
    return urls


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - local http URLs
            status: int = response.status
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return 200 <= status < 300


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    urls = list(argv) or default_urls(environ)
    return 0 if any(answers(url) for url in urls) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
