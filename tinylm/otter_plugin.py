"""tinylm's grader inside Otter-Grader (the autograder bundles of `tinylm course build`).

Otter runs a submission by executing the notebook in a kernel and then the test files in the
same kernel, so code in the notebook could tamper with the tests. TinylmGrader, an Otter plugin
named in the bundle's otter_config.json, grades the submitted file with tinylm.grading in
Otter's own process before anything is executed, writes the results next to the submission,
and hands Otter an empty notebook: the learner's code never runs in the kernel. The bundle's
test cases only read those results (`check`).
"""
import json
import os
from pathlib import Path

from otter.plugins import AbstractOtterPlugin

from .course import RESULTS_FILE
from .grading import grade

RESULTS_ENV = "TINYLM_OTTER_RESULTS"  # tells the kernel (a child of Otter's process) where the results are


class TinylmGrader(AbstractOtterPlugin):
    """Grade with tinylm before Otter executes the submission; leave Otter nothing to execute.

    Its configuration in otter_config.json, {"tinylm.otter_plugin.TinylmGrader": {"time_limit": S,
    "memory_limit": MIB}}, sets the grader's limits (either may be left out: the grader's default)."""

    SETTINGS = ("time_limit", "memory_limit")

    def before_execution(self, submission):
        config = self.plugin_config or {}
        unknown = sorted(set(config) - set(self.SETTINGS))
        if unknown:
            raise ValueError(f"otter_config.json: TinylmGrader has no setting {', '.join(map(repr, unknown))}: "
                             f"expected {' and '.join(self.SETTINGS)}")
        report = grade(self.submission_path, **config)
        print(report.text())
        results = Path(self.submission_path).with_name(RESULTS_FILE)
        results.write_text(json.dumps(report.to_dict()), encoding="utf-8")
        os.environ[RESULTS_ENV] = str(results)
        submission.cells = []
        return submission


def check(exercise, index):
    """An Otter test case: check `index` of `exercise` passed (else AssertionError with the detail)."""
    results = json.loads(Path(os.environ[RESULTS_ENV]).read_text(encoding="utf-8"))
    found = results["exercises"][exercise]
    if found["reason"]:
        raise AssertionError(f"{exercise} scores 0: {found['reason']}")
    label, passed, detail = found["checks"][index]
    assert passed, f"{label}: {detail}"
