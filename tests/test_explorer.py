"""explorer.AttentionExplorer: exact weights in a self-contained HTML view, clear errors on bad input."""

from __future__ import annotations

import re

import pytest
import torch

from transformer_course.explorer import PLOTLY_SOURCES, AttentionExplorer


def _weights(L=2, H=3, T=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(L, H, T, T, generator=generator), dim=-1)


def test_the_page_gets_the_weights_bit_for_bit_and_nothing_from_another_host():
    weights = [_weights(T=4), _weights(T=6, seed=1)]
    view = AttentionExplorer([list("abcd"), list("uvwxyz")], weights, names=["first", "second"])
    assert all(torch.equal(a, b) for a, b in zip(view.embedded_weights(), weights, strict=True))
    page = view._repr_html_()
    assert not re.search(r"https?://", page)
    assert all(source in page for source in PLOTLY_SOURCES)
    assert page.count('<option value="') == 2 + 2 + (1 + 3)  # sentences, layers, heads with "all"
    assert "</script" not in page.split('class="attention-explorer-data">')[1].split("</script>")[0]
    assert 0 < view.html_size_kib() < 64


def test_two_views_on_one_page_do_not_share_an_id():
    view = AttentionExplorer([list("ab")], [_weights(T=2)])
    ids = re.findall(r'id="(attention-explorer-[0-9a-f]+)"', view._repr_html_() + view._repr_html_())
    assert len(set(ids)) == 2


def test_a_token_cannot_close_the_embedded_script():
    view = AttentionExplorer([["</script>", "x"]], [_weights(T=2)])
    data = view._repr_html_().split('class="attention-explorer-data">')[1]
    assert data.index("</script>") > data.index("<\\/script>")


@pytest.mark.parametrize(
    "tokens, weights, match",
    [
        ([], [], r"tokens, weights: .*at least one"),
        ([list("abc")], [_weights(T=4)], r"weights\[0\]: T = 4 but tokens\[0\] has 3"),
        ([list("ab")], [torch.zeros(2, 2)], r"weights\[0\]: expected a tensor \(L, H, T, T\), got \(2, 2\)"),
        ([list("ab"), list("ab")], [_weights(T=2), _weights(L=3, T=2)], r"the same \(L, H\)"),
    ],
)
def test_bad_input_is_named(tokens, weights, match):
    with pytest.raises(ValueError, match=match):
        AttentionExplorer(tokens, weights)


def test_the_hover_names_each_word_with_its_position():
    # "from the to the" told nothing when a sentence has "the" twice: the hover gives positions.
    from transformer_course.explorer import HOVER_TEMPLATE

    assert HOVER_TEMPLATE == ("from <b>%{customdata[0]}</b> (%{customdata[1]}) to "
                              "<b>%{customdata[2]}</b> (%{customdata[3]}): %{z:.4f}<extra></extra>")
    page = AttentionExplorer([["the", "cat", "saw", "the", "dog"]], [_weights(T=5)])._repr_html_()
    assert f'var HOVER = "{HOVER_TEMPLATE}";' in page
    assert "return [q, i, k, j];" in page  # customdata: query, its position, key, its position


def test_the_title_is_under_the_heat_map_away_from_the_keys_axis_title():
    # The keys' axis (ticks and title) is above the heat map; plotly's title there overlapped it.
    page = AttentionExplorer([list("abc")], [_weights(T=3)])._repr_html_()
    title = page[page.index('title: {text: "layer "'):]
    title = title[:title.index("pad:")]
    assert 'yref: "paper", y: 0, yanchor: "top"' in title, title
    assert re.search(r'xaxis: Object\.assign\(\{title: \{text: "attends to \(key\)"\}, side: "top"', page)
