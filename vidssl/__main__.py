import sys

from vidssl.cli import main

sys.exit(main())
