"""``python -m pyramid_session_redis.cli``: the console tool."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
