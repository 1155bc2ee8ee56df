"""``python -m neurolp`` runs the command-line interface."""

from neurolp.cli import main

raise SystemExit(main())
