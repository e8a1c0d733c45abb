"""Allow ``python -m roost``."""

from roost.cli import main

raise SystemExit(main())
