# lit configuration: `lit tests/passes/filecheck` runs the same RUN lines as
# tests/passes/test_filecheck.py (tcc and filecheck must be on PATH).
import lit.formats

config.name = "transcode-passes"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".tir"]
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.environment["PATH"] = os.environ.get("PATH", "")  # noqa: F821
