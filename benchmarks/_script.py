"""Entry point shared by the benchmark scripts: a user error (bad model name, missing data, corrupt file) prints
one line and exits with code 2, as the ``ferbench`` CLI does, instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(main: Callable[[], object]) -> None:
    """Call ``main()``; :class:`ferbench.errors.FerbenchError` → ``error: MESSAGE`` on stderr, exit 2."""
    from ferbench.errors import FerbenchError

    try:
        main()
    except FerbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
