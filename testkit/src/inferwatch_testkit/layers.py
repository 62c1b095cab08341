"""``python -m inferwatch_testkit.layers``: import-linter over every inferwatch distribution.

import-linter (grimp) finds a package's folders from its import spec. ``inferwatch`` is the SDK's
package, and the middleware's and the collector's folders join it when it is imported (its
``__path__``, which is its spec's search locations, is extended then). So this imports it, then runs
``lint-imports`` with the contracts of pyproject.toml; a bare ``lint-imports`` would see the SDK
alone.
"""

from __future__ import annotations

import sys

import inferwatch


def main() -> int:
    from importlinter import configuration
    from importlinter.application.use_cases import lint_imports

    configuration.configure()
    assert len(inferwatch.__path__) > 1, "only the SDK is installed: nothing to check across"
    return 0 if lint_imports(no_logo=True) else 1


if __name__ == "__main__":
    sys.exit(main())
