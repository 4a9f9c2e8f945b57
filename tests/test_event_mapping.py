"""The company's own event vocabulary (issue #17, item 2), given once and travelling with the
dataset; and rewards that name a stage the chain does not know (item 6)."""

from __future__ import annotations

import pandas as pd
import pytest

from clmmodels import ClmError, load_dataset
from clmmodels.vocabulary import load_event_mapping

from .conftest import run_clm

# VALID's events renamed to the company's own words.
OWN_EVENTS = (
    "customer_id,timestamp,event_type\n"
    "00042,2024-01-01,banner_click\n"
    "00042,2024-01-03,catalogue_page\n"
    "42,2024-01-19,homepage\n"
)
OWN_MAPPING = (
    "event_type,stage\nbanner_click,awareness\ncatalogue_page,evaluation\nhomepage,engagement\n"
)


def test_csv_and_yaml_mappings_read_the_same(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text(OWN_MAPPING)
    yml = tmp_path / "m.yml"
    yml.write_text("banner_click: awareness\ncatalogue_page: evaluation\nhomepage: engagement\n")
    assert load_event_mapping(csv) == load_event_mapping(yml) == {
        "banner_click": "awareness", "catalogue_page": "evaluation", "homepage": "engagement",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("event_type,stage\nlogin,Engagement\n", r"unknown stages \['Engagement'\]"),
        ("event,stage\nlogin,engagement\n", "needs the columns event_type,stage"),
        ("event_type,stage\n", "has no rows"),
        ("event_type,stage\nlogin,engagement\nlogin,retention\n", "maps to both"),
    ],
)
def test_a_bad_mapping_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ClmError, match=message):
        load_event_mapping(path)


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_stages_take_the_companys_own_vocabulary(
    make_dataset, tmp_path, monkeypatch, capsys, engine
):
    standard = make_dataset()
    expected = tmp_path / "standard.csv"
    code, text = run_clm(monkeypatch, capsys, "stages", str(standard), "--out", str(expected))
    assert code == 0, text
    own = make_dataset({"events": OWN_EVENTS})  # the same folder, the events renamed
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(OWN_MAPPING)
    out = tmp_path / "own.csv"
    args = ["stages", str(own), "--engine", engine, "--out", str(out)]
    code, text = run_clm(monkeypatch, capsys, *args)
    assert code == 2, text
    # the file, the column, the rule and the first offending lines, as every contract error
    assert "events.csv: column 'event_type': rule 'a known event type" in text
    assert "first: line 2 ('banner_click')" in text and "Traceback" not in text
    code, text = run_clm(monkeypatch, capsys, *args, "--event-mapping", str(mapping))
    assert code == 0, text
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(expected))


def test_a_mapping_in_the_folder_travels_with_the_dataset(
    make_dataset, monkeypatch, capsys, tmp_path
):
    folder = make_dataset({"events": OWN_EVENTS, "event_mapping.csv": OWN_MAPPING})
    assert load_dataset(folder).event_stages["catalogue_page"] == "evaluation"
    code, text = run_clm(monkeypatch, capsys, "validate", str(folder))
    assert code == 0, text
    code, text = run_clm(
        monkeypatch, capsys, "stages", str(folder), "--out", str(tmp_path / "m.csv")
    )
    assert code == 0, text


def test_a_non_canonical_stage_is_exit_2_naming_it(make_dataset, monkeypatch, capsys, tmp_path):
    mapping = tmp_path / "mapping.csv"
    mapping.write_text(OWN_MAPPING.replace("homepage,engagement", "homepage,Engaged"))
    folder = make_dataset({"events": OWN_EVENTS})
    for command in (["validate"], ["stages", "--out", str(tmp_path / "m.csv")]):
        code, text = run_clm(
            monkeypatch, capsys, command[0], str(folder), *command[1:],
            "--event-mapping", str(mapping),
        )  # fmt: skip
        assert code == 2 and "unknown stages ['Engaged']" in text and "Traceback" not in text


def test_rewards_naming_an_unknown_stage_are_an_error():
    from clmmodels.stages.chain import MarkovChain

    stages = ["retention", "churned"]
    chain = MarkovChain(pd.DataFrame([[0.8, 0.2], [0.0, 1.0]], index=stages, columns=stages))
    with pytest.raises(ClmError, match=r"unknown stages \['Retention'\]"):
        chain.clv(pd.Series({"Retention": 10.0}), discount_rate=0.01)
    # a canonical stage this chain does not have is worth nothing here, not an error
    value = chain.clv(pd.Series({"retention": 10.0, "advocacy": 5.0}), discount_rate=0.01)
    assert value["retention"] > 10.0
