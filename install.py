"""ComfyUI-Manager runs this after cloning: install requirements.txt into ComfyUI's Python."""

import subprocess
import sys
from pathlib import Path

requirements = Path(__file__).resolve().parent / "requirements.txt"
subprocess.check_call([sys.executable, "-m", "pip", "install", "-r", str(requirements)])
