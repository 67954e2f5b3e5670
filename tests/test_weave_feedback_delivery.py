"""Score feedback is part of what the Weave sink confirms: one lost is sent again, once.

The fault is real: a loopback proxy in front of the real Weave server answers 500 to every feedback
write of weave's client (its own retries included) until the sink first reads feedback back, while
the rows go through — so the server holds every row and none of its ``wandb.runnable.<scorer>``
feedback, the case a row-only read-back cannot see. The receiver, with the real Weave sink, must
end idle with exactly one feedback per Inspect score (counted from Inspect's logs) on the row's
``Model.predict`` call, and nothing twice.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.support.e2e import Receiver
from tests.test_delivery import _FailingProxy, _receiver_env, _send, _spans, receivers, recorded
from tests.test_weave_sink import Run, check_matches_inspect, short, unique
from tests.weave_server.harness import WeaveServer

__all__ = ["receivers", "recorded"]


class _FeedbackLosingProxy(_FailingProxy):
    """Refuses feedback writes until the first feedback read-back, and every retry of a refused one."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.failing = False
        self.read_back = False
        self.lost: set[str] = set()  # feedback ids refused once: weave's retries of them are refused too
        self.passed: list[str] = []

    def refuses(self, path: str, body: bytes | None) -> bool:
        if path.startswith("/feedback/query"):
            self.read_back = True
        if not path.startswith("/feedback/batch/create") or not body:
            return path.startswith("/feedback/create")  # the per-item fallback: never used here
        ids = [str(item.get("id")) for item in json.loads(body)["batch"]]
        if not self.read_back or self.lost & set(ids):
            self.lost.update(ids)
            return True
        self.passed.extend(ids)
        return False


def test_feedback_lost_on_held_rows_is_written_again_once(
    weave_server: WeaveServer, recorded: Run, tmp_path: Path, receivers: list[Receiver]
) -> None:
    proxy = _FeedbackLosingProxy(weave_server.url)
    try:
        project = unique("feedback-lost")
        receiver = Receiver(tmp_path, _receiver_env(proxy.url, project, tmp_path), to="weave")
        receivers.append(receiver)
        receiver.start()
        assert _send(receiver, recorded).returncode == 0
        health = receiver.wait_idle(_spans(recorded), timeout=240)
        assert health["status"] == "ok" and health["dead_lettered_entries"] == 0, health
    finally:
        proxy.close()
    assert proxy.lost, "the fault did not happen: no feedback write was refused"
    check_matches_inspect(weave_server, Run(project, recorded.logs, recorded.span_files, recorded.proc, 0.0))
    scores = Counter(
        (log.eval.model, str(s.id), s.epoch, name)
        for log in recorded.logs
        for s in log.samples or []
        for name in s.scores or {}
    )
    calls = {c["id"]: c for c in weave_server.calls(project)}
    feedback = weave_server.feedback(project)
    # (without the feedback read-back nothing reads feedback, so every one stays refused: 0 here)
    assert len(feedback) == sum(scores.values()) == 24, proxy.read_back  # 2 models × 6 rows × 2 scorers
    assert not proxy.lost & {f["id"] for f in feedback}  # what arrived is the sink's second writing
    seen: Counter[tuple[str, str, int, str]] = Counter()
    for f in feedback:
        predict = calls[f["weave_ref"].rsplit("/", 1)[-1]]
        assert short(predict["op_name"]) == "Model.predict"
        row = calls[predict["parent_id"]]
        evaluation = calls[row["parent_id"]]
        inspect = row["attributes"]["inspect"]
        model = evaluation["attributes"]["inspect"]["model"]
        seen[(model, str(inspect["sample_id"]), inspect["epoch"], f["feedback_type"].split(".")[-1])] += 1
    assert seen == scores
