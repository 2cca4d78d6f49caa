import sys

from verl_falcon_plugin.cli import main

sys.exit(main())
