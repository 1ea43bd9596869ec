"""CSV rendering (spec/API.md §3.14) against golden output."""

from __future__ import annotations

from app.services.csv_render import render_csv

GOLDEN_LIST = (
    "count,next,previous,results.0.filters.insight,results.0.id,results.0.name,results.0.saved,results.0.tags.0,"
    "results.1.id,results.1.name,results.1.result.0.data.0,results.1.result.0.data.1,results.1.saved\r\n"
    '2,,,TRENDS,1,"a, ""quoted"" name",True,x,2,"two\nlines",1,2.5,False\r\n'
)


class TestRenderCSV:
    def test_list_is_one_flattened_row(self):
        body = {"count": 2, "next": None, "previous": None, "results": [
            {"id": 1, "name": 'a, "quoted" name', "saved": True, "tags": ["x"], "filters": {"insight": "TRENDS"},
             "dashboards": [], "query": {}},
            {"id": 2, "name": "two\nlines", "saved": False, "tags": [], "result": [{"data": [1, 2.5]}]},
        ]}
        assert render_csv(body) == GOLDEN_LIST

    def test_array_is_one_row_per_element_with_missing_cells_empty(self):
        assert render_csv([{"b": 1, "a": None}, {"c": "z"}]) == "a,b,c\r\n,1,\r\n,,z\r\n"
