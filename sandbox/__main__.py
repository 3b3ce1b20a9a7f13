"""`python -m sandbox` is the same as the `payments-sandbox` command."""

from sandbox.cli import main

raise SystemExit(main())
