from pathlib import Path

import pytest

from ytfgvc.datasets import get_card, list_datasets
from ytfgvc.errors import ValidationError, YtfgvcError


def test_builtin_cards_have_the_papers_numbers():
    assert {"birds", "cars", "synthetic"} <= set(list_datasets())
    birds, cars = get_card("birds"), get_card("cars")
    assert (birds.num_classes, birds.split_sizes.train, birds.split_sizes.test) == (200, 12666, 5684)
    assert (cars.num_classes, cars.split_sizes.train, cars.split_sizes.test) == (196, 10259, 4961)
    assert (birds.videos_per_class.min, birds.videos_per_class.max) == (6, 249)
    assert (cars.videos_per_class.min, cars.videos_per_class.max) == (6, 207)
    assert (birds.sample_fps, cars.sample_fps) == (2, 4)
    for card in (birds, cars):
        assert card.filters.max_duration_s == 300 and card.filters.min_resolution == 360
        assert card.official_files.train == "train_list.json"
        # The paper's text: "The datasets are available at http://www.cs.umd.edu/~chenzhu/fgvc."
        assert card.project_page == "http://www.cs.umd.edu/~chenzhu/fgvc"
        assert card.project_page_moved == "https://zhuchen03.github.io/projects/fgvc/"
        assert card.arxiv == "1810.11189" and card.paper.startswith(
            "Chen Zhu, Xiao Tan, Feng Zhou, Xiao Liu, Kaiyu Yue"
        )
        assert card.project_page in card.sources_url and card.project_page_moved in card.sources_url
    assert birds.paper_table6 == {"bninception": 60.13, "i3d": 40.68, "tsn": 72.361, "rra": 73.205}
    assert cars.paper_table6 == {"bninception": 61.96, "i3d": 40.92, "tsn": 74.34, "rra": 77.625}


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(YtfgvcError, match="did you mean 'birds'"):
        get_card("bird")


def test_adding_a_card_adds_a_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "dogs.yaml").write_text(
        "schema: ytfgvc-card-1\nname: dogs\nnum_classes: 5\nsample_fps: 1\nsplit_sizes: {train: 10, test: 5}\n"
    )
    monkeypatch.setenv("YTFGVC_CARDS", str(tmp_path))
    assert "dogs" in list_datasets()
    assert get_card("dogs").num_classes == 5


@pytest.mark.parametrize(
    "body, message",
    [
        ("name: bad\nsample_fps: 1\n", "missing required field 'num_classes'"),
        ("name: bad\nnum_classes: 0\nsample_fps: 1\n", "num_classes"),
        ("name: bad\nnum_classes: 3\nsample_fps: 1\nfps: 3\n", "unknown key 'fps'"),
        ("name: bad\nnum_classes: 3\nsample_fps: 1\ndefault_source: ftp\n", "default_source"),
        ("name: [unclosed\n", "cannot read dataset card"),
    ],
)
def test_bad_card_is_rejected_with_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str):
    (tmp_path / "bad.yaml").write_text(body)
    monkeypatch.setenv("YTFGVC_CARDS", str(tmp_path))
    with pytest.raises(YtfgvcError) as e:
        get_card("bad")
    text = e.value.report() if isinstance(e.value, ValidationError) else str(e.value)
    assert message in text
