import numpy as np
import pytest

from napari_cosynth import PointTable
from napari_cosynth.data.points_csv import read_points_csv, write_points_csv
from napari_cosynth.errors import DatasetError
from napari_cosynth.vocabularies import CONSEP


def test_round_trip_and_ids_or_names(tmp_path):
    pts = PointTable([[1.25, 2.5], [10, 20]], [2, 4])
    write_points_csv(pts, CONSEP, tmp_path / "p.csv")
    back = read_points_csv(tmp_path / "p.csv", CONSEP)
    np.testing.assert_allclose(back.xy, pts.xy)
    assert back.classes.tolist() == [2, 4]
    (tmp_path / "q.csv").write_text("x,y,class\n1,2,3\n4,5,inflammatory\n")
    assert read_points_csv(tmp_path / "q.csv", CONSEP).classes.tolist() == [3, 2]


@pytest.mark.parametrize(
    "text, message",
    [
        ("x,y\n1,2\n", "missing \\['class'\\]"),
        ("x,y,class\n1,2,neutrophil\n", "line 2: unknown class 'neutrophil'"),
        ("x,y,class\n1,2,1\n1,b,1\n", "line 3: x and y must be numbers"),
        ("x,y,class\n1,2,0\n", "unknown class '0'"),
    ],
)
def test_bad_tables_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as error:
        read_points_csv(path, CONSEP)
    assert "bad.csv" in str(error.value)
