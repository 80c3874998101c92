"""Runs a live event's lifecycle through the official Azure Media Services SDK
(azure-mgmt-media), unchanged but for its endpoint, with its long-running-operation pollers:
an asset, a pass-through RTMP live event, a live output recording into the asset (30 minutes
of DVR), start, stop, the output's and the event's deletion. Prints what the SDK read back at
each step as JSON.

usage: live.py BASE_URL CA_CERT  (the bearer token in API_TOKEN)
"""

import json
import sys
from datetime import timedelta

from azure.mgmt.media.models import (
    Asset,
    LiveEvent,
    LiveEventActionInput,
    LiveEventEncoding,
    LiveEventInput,
    LiveOutput,
)

from publish import ACCOUNT, GROUP, media_services


def main():
    client = media_services(sys.argv[1], sys.argv[2])
    client.assets.create_or_update(GROUP, ACCOUNT, "live-sdk", Asset(container="live/sdk", storage_account_name="media"))
    event = client.live_events.begin_create(
        GROUP,
        ACCOUNT,
        "sdk-event",
        LiveEvent(
            location="westeurope",
            input=LiveEventInput(streaming_protocol="RTMP"),
            encoding=LiveEventEncoding(encoding_type="PassthroughStandard"),
        ),
        auto_start=False,
    ).result()
    answer = {"created": event.resource_state, "token": event.input.access_token}
    output = client.live_outputs.begin_create(
        GROUP,
        ACCOUNT,
        "sdk-event",
        "sdk-output",
        LiveOutput(asset_name="live-sdk", archive_window_length=timedelta(minutes=30), manifest_name="sdk"),
    ).result()
    answer["output"] = {"asset": output.asset_name, "window": output.archive_window_length.total_seconds()}
    client.live_events.begin_start(GROUP, ACCOUNT, "sdk-event").result()
    started = client.live_events.get(GROUP, ACCOUNT, "sdk-event")
    answer["started"] = started.resource_state
    answer["endpoints"] = [{"protocol": e.protocol, "url": e.url} for e in started.input.endpoints]
    answer["listed"] = [e.name for e in client.live_events.list(GROUP, ACCOUNT)]
    client.live_events.begin_stop(
        GROUP, ACCOUNT, "sdk-event", LiveEventActionInput(remove_outputs_on_stop=False)
    ).result()
    answer["stopped"] = client.live_events.get(GROUP, ACCOUNT, "sdk-event").resource_state
    client.live_outputs.begin_delete(GROUP, ACCOUNT, "sdk-event", "sdk-output").result()
    client.live_events.begin_delete(GROUP, ACCOUNT, "sdk-event").result()
    answer["events_left"] = [e.name for e in client.live_events.list(GROUP, ACCOUNT)]
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
