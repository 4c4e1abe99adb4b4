import sys

from splade_onnx.cli.main import main

sys.exit(main())
