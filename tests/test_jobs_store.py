"""The job queue in the database: claims, cancels, the point of no return, recovery."""

from __future__ import annotations

import pytest

from modelport.errors import Conflict, RateLimited
from modelport.store.jobs import CANCELLED, FAILED, RUNNING, SUCCEEDED, runner_id

SPEC = {"dataset": "ds_1", "name": "m", "target": "y", "time_budget": 5}


def test_a_job_is_claimed_by_one_runner_only(store):
    jobs = store.jobs
    job = jobs.submit(SPEC, max_queued=10)
    first, second = runner_id(), runner_id()
    assert jobs.claim(first).id == job.id
    assert jobs.claim(second) is None
    assert jobs.update(job.id, first, progress=0.5)
    assert not jobs.update(job.id, second, progress=0.9)  # not its job
    assert jobs.get(job.id).progress == 0.5


def test_the_queue_is_bounded_and_first_in_first_out(store):
    jobs = store.jobs
    ids = [jobs.submit(SPEC, max_queued=2).id for _ in range(2)]
    with pytest.raises(RateLimited, match="MODELPORT_MAX_QUEUED_JOBS"):
        jobs.submit(SPEC, max_queued=2)
    runner = runner_id()
    assert [jobs.claim(runner).id, jobs.claim(runner).id] == ids


def test_cancel_stops_a_running_job_before_registration_not_after(store):
    jobs = store.jobs
    runner = runner_id()
    cancelled = jobs.submit(SPEC, max_queued=10)
    jobs.claim(runner)
    assert jobs.cancel(cancelled.id).status == RUNNING  # the runner stops it
    assert not jobs.update(cancelled.id, runner)
    assert not jobs.begin_registering(cancelled.id, runner)

    registering = jobs.submit(SPEC, max_queued=10)
    jobs.claim(runner)
    assert jobs.begin_registering(registering.id, runner)
    with pytest.raises(Conflict, match="too late to cancel"):
        jobs.cancel(registering.id)
    assert jobs.finish(registering.id, SUCCEEDED, runner=runner, model="m:1").status == SUCCEEDED
    with pytest.raises(Conflict, match=r"already ended \(succeeded\)"):
        jobs.cancel(registering.id)


def test_finish_is_once_and_only_by_the_owner(store):
    jobs = store.jobs
    owner = runner_id()
    job = jobs.submit(SPEC, max_queued=10)
    jobs.claim(owner)
    assert jobs.finish(job.id, FAILED, runner=runner_id(), error="x").status == RUNNING
    done = jobs.finish(job.id, FAILED, runner=owner, error="e" * 10_000)
    assert done.status == FAILED and len(done.error) == 2000
    assert jobs.finish(job.id, CANCELLED).status == FAILED


def test_recovery_fails_jobs_whose_server_is_gone(store):
    jobs = store.jobs
    here = runner_id()
    followed, orphaned, elsewhere = (jobs.submit(SPEC, max_queued=10) for _ in range(3))
    jobs.claim(here), jobs.claim(here)
    jobs.claim("otherhost:4242:abc")  # a live server elsewhere: fresh heartbeat, kept
    assert jobs.recover(here, {followed.id}) == [orphaned.id]
    assert jobs.get(orphaned.id).status == FAILED
    assert "stopped before it finished" in jobs.get(orphaned.id).error
    assert jobs.get(followed.id).status == RUNNING
    assert jobs.get(elsewhere.id).status == RUNNING
    assert jobs.recover() == [followed.id]  # after a restart: its pid is this process's
    assert jobs.using("ds_1") == [elsewhere.id]


def test_a_job_must_fit_its_dataset_when_submitted():
    from modelport.errors import InvalidParameter, InvalidTarget
    from modelport.train.spec import JobSpec

    columns = [{"name": "x", "dtype": "number"}, {"name": "plan", "dtype": "string"}]
    spec = JobSpec.from_request({**SPEC, "target": "plan", "task": "regression"}, 100)
    with pytest.raises(InvalidTarget, match="holds text"):
        spec.check_dataset("table", columns)
    spec = JobSpec.from_request({**SPEC, "target": "plan", "metric": "r2"}, 100)
    with pytest.raises(InvalidParameter, match="does not fit a classification task"):
        spec.check_dataset("table", columns)
    with pytest.raises(InvalidTarget, match="folders"):  # photos: classes are the folders
        JobSpec.from_request(SPEC, 100).check_dataset("images", [])
    JobSpec.from_request({**SPEC, "target": None}, 100).check_dataset("images", [])
    with pytest.raises(InvalidParameter, match="script"):
        JobSpec.from_request(SPEC, 100).check_dataset("text", [])
    with pytest.raises(InvalidTarget, match="needs 'target'"):
        JobSpec.from_request({**SPEC, "target": None}, 100).check_dataset("table", columns)
    JobSpec.from_request({**SPEC, "target": "x", "metric": "r2"}, 100).check_dataset(
        "table", columns
    )
