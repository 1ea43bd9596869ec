"""`python -m tests.ingestion.query_data_dir DATA_DIR TEAM_ID`: print the stored event uuids of a
stopped server's data dir as JSON (chDB lets one process own a data dir, so the test asks a
separate process, through the same executor the service uses)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from app.query_engine.executor.chdb import ChdbExecutor


async def main(data_dir: str, team_id: int) -> None:
    executor = ChdbExecutor(str(Path(data_dir) / "clickhouse"), "tally", pool_size=2)
    try:
        result = await executor.execute(
            "SELECT toString(uuid) FROM events WHERE team_id = {t:Int64}", {"t": team_id})
    finally:
        await executor.close()
    print(json.dumps([row[0] for row in result.rows]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
