from __future__ import annotations

import asyncio
import uuid

from arq.jobs import JobStatus


class TestInProcessWorker:
    async def test_heartbeat_job_runs(self, app):
        token = uuid.uuid4().hex
        job = await app.state.arq.enqueue_job("heartbeat", token, _queue_name="tally:queue")
        result = await asyncio.wait_for(job.result(poll_delay=0.05), timeout=20)
        assert result["token"] == token
        assert await app.state.redis.get(f"tally:heartbeat:{token}") is not None
        assert await job.status() == JobStatus.complete
