"""Progress bars: live tqdm bars on a terminal, rare plain lines in a log."""
from __future__ import annotations

import io

from recsim.progress import LineProgress, is_live, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_short_bar_in_a_log_writes_nothing():
    out = io.StringIO()
    assert list(LineProgress(range(1000), "fast", interval=60.0, stream=out)) == list(range(1000))
    assert out.getvalue() == ""


def test_a_long_bar_writes_lines_with_count_postfix_and_a_closing_line():
    out = io.StringIO()
    bar = LineProgress(range(3), "slow", interval=0.0, stream=out)
    for _ in bar:
        bar.set_postfix(loss="0.5")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # one per item but the last (interval 0), and the closing line
    assert lines[0].startswith("slow: 1/3 [") and "loss=0.5" in lines[1]
    assert lines[-1].startswith("slow: 3/3 [") and " done" in lines[-1]
    assert "\r" not in out.getvalue()


def test_resumed_bar_counts_from_initial():
    out = io.StringIO()
    list(LineProgress(range(3, 5), "epochs", total=4, initial=2, interval=0.0, stream=out))
    assert out.getvalue().splitlines()[-1].startswith("epochs: 4/4")


def test_mode_follows_the_terminal_unless_the_variable_says_otherwise(monkeypatch):
    monkeypatch.delenv("RECSIM_PROGRESS", raising=False)
    assert is_live(FakeTerminal()) and not is_live(io.StringIO())
    monkeypatch.setenv("RECSIM_PROGRESS", "lines")
    assert not is_live(FakeTerminal())
    monkeypatch.setenv("RECSIM_PROGRESS", "live")
    assert is_live(io.StringIO())


def test_progress_bar_is_plain_lines_in_a_log_and_tqdm_on_a_terminal(monkeypatch):
    monkeypatch.setenv("RECSIM_PROGRESS", "lines")
    assert isinstance(progress_bar(range(2), "x"), LineProgress)
    monkeypatch.setenv("RECSIM_PROGRESS", "live")
    from tqdm.auto import tqdm

    bar = progress_bar(range(2), "x", enabled=False)
    assert isinstance(bar, tqdm) and list(bar) == [0, 1]
