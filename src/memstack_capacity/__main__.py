"""``python -m memstack_capacity`` runs the command-line interface."""

from memstack_capacity.cli import main

raise SystemExit(main())
