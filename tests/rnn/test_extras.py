"""Optional dependencies say what they are: ``import rnn`` without TensorFlow
names the extra to install (nestlib itself needs no TensorFlow)."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

WITHOUT_TF = r"""
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
import nestlib
assert nestlib.flatten({"a": [1, 2]}) == [1, 2]
try:
    import rnn
except ImportError as e:
    print(json.dumps({"type": type(e).__name__, "message": str(e)}))
else:
    print(json.dumps({"type": None}))
"""


def test_import_rnn_without_tensorflow_names_the_extra():
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_TF], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["type"] == "ImportError", seen
    assert "nestlib[tf]" in seen["message"] and "TensorFlow" in seen["message"], seen
