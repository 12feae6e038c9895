"""The seed's flow through a client generated from the OpenAPI document.

tests/api/test_generated_client.py generates ``chatflow_client`` beside a copy of this script,
type-checks both with mypy --strict and runs it: ``seed_flow.py BASE_URL KEY XLSX OUT``. It
prints the run's status and output names as JSON and writes the downloaded output to OUT.
"""

from __future__ import annotations

import json
import sys
from io import BytesIO
from pathlib import Path
from uuid import UUID

from chatflow_client import AuthenticatedClient
from chatflow_client.api.chats import create_chat
from chatflow_client.api.files import download, upload
from chatflow_client.api.runs import execute
from chatflow_client.models import (
    ChatCreate,
    EnvelopeChatOut,
    EnvelopelistFileOut,
    EnvelopeRunOut,
    ExecuteIn,
    ExtractColumnsArgs,
    ExtractColumnsToFile,
    UploadBody,
)
from chatflow_client.types import File

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def seed_flow(base_url: str, key: str, source: Path, out: Path) -> dict[str, object]:
    """Create a chat, upload ``source``, extract its postal codes, download the output."""
    with AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True) as c:
        chat = create_chat.sync(client=c, body=ChatCreate(title="seed"))
        assert isinstance(chat, EnvelopeChatOut), chat
        chat_id = UUID(chat.data.chat_id)
        part = File(payload=BytesIO(source.read_bytes()), file_name=source.name, mime_type=XLSX)
        uploaded = upload.sync(chat_id, client=c, body=UploadBody(file=[part]))
        assert isinstance(uploaded, EnvelopelistFileOut), uploaded
        step = ExtractColumnsToFile(
            operation="excel/extract-columns-to-file",
            arguments=ExtractColumnsArgs(columns=["postal_code"], remove_duplicates=True),
        )
        run = execute.sync(chat_id, client=c, body=ExecuteIn(steps=[step]), wait=True)
        assert isinstance(run, EnvelopeRunOut), run
        outputs = [output.filename for output in run.data.outputs]
        got = download.sync(chat_id, outputs[0], client=c)
        assert isinstance(got, File), got
        out.write_bytes(got.payload.read())
        return {"status": str(run.data.status), "outputs": outputs}


if __name__ == "__main__":
    base_url, key, source, out = sys.argv[1:5]
    print(json.dumps(seed_flow(base_url, key, Path(source), Path(out))))  # noqa: T201
