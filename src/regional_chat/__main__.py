"""python -m regional_chat: the command line."""

from .cli import main

raise SystemExit(main())
