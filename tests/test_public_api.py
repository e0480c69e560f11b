import subprocess
import sys

import modelport
from modelport import errors


def test_every_exported_name_resolves():
    assert modelport.__all__ == sorted(modelport.__all__)
    for name in modelport.__all__:
        assert getattr(modelport, name) is not None


def test_import_modelport_stays_light():
    code = (
        "import sys, modelport; heavy = {'pandas', 'sklearn', 'flaml', 'sqlalchemy', 'lightgbm'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_has_a_status_and_round_trips_by_code():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert all(issubclass(c, errors.ModelportError) for c in classes)
    for cls in classes:
        rebuilt = errors.error_for(cls.code, "message")
        assert type(rebuilt) is cls and rebuilt.message == "message"
        assert 400 <= cls.status < 600
