"""Publishes the fixtures' ladder through the official Azure Media Services SDK
(azure-mgmt-media), unchanged but for its endpoint: an asset over the `ladder` folder, an
account filter (the first 4 seconds) and an asset filter (the 150 kb/s video and the English
audio), a clear locator using both filters, an AES-128 envelope locator and a download-only
one, then prints the locators' listPaths answers as JSON.

usage: publish.py BASE_URL CA_CERT  (the bearer token in API_TOKEN)
"""

import json
import os
import sys
import time

from azure.core.credentials import AccessToken
from azure.mgmt.media import AzureMediaServices
from azure.mgmt.media.models import (
    AccountFilter,
    Asset,
    AssetFilter,
    FilterTrackPropertyCondition,
    FilterTrackSelection,
    PresentationTimeRange,
    StreamingLocator,
)

SUBSCRIPTION, GROUP, ACCOUNT = "00000000-0000-0000-0000-000000000000", "media", "origin"


class StaticToken:
    """A credential that hands out the test's token, as azure-identity's would a real one."""

    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, int(time.time()) + 3600)


def condition(prop, value, operation="Equal"):
    return FilterTrackPropertyCondition(property=prop, value=value, operation=operation)


def media_services(base_url, ca_cert):
    """The SDK's client of the API at base_url, trusting ca_cert, with the token in API_TOKEN."""
    return AzureMediaServices(
        StaticToken(os.environ["API_TOKEN"]), SUBSCRIPTION, base_url=base_url, connection_verify=ca_cert
    )


def main():
    client = media_services(sys.argv[1], sys.argv[2])
    client.assets.create_or_update(GROUP, ACCOUNT, "ladder-sdk", Asset(container="ladder", description="SDK test"))
    client.account_filters.create_or_update(
        GROUP,
        ACCOUNT,
        "first4s",
        AccountFilter(presentation_time_range=PresentationTimeRange(start_timestamp=0, end_timestamp=40_000_000)),
    )
    client.asset_filters.create_or_update(
        GROUP,
        ACCOUNT,
        "ladder-sdk",
        "low",
        AssetFilter(
            tracks=[
                FilterTrackSelection(track_selections=[condition("Type", "Video"), condition("Bitrate", "0-200000")]),
                FilterTrackSelection(track_selections=[condition("Type", "Audio"), condition("Language", "eng")]),
            ]
        ),
    )
    client.streaming_locators.create(
        GROUP,
        ACCOUNT,
        "sdk-clear",
        StreamingLocator(
            asset_name="ladder-sdk",
            streaming_policy_name="Predefined_ClearStreamingOnly",
            filters=["first4s", "low"],
        ),
    )
    client.streaming_locators.create(
        GROUP,
        ACCOUNT,
        "sdk-clearkey",
        StreamingLocator(asset_name="ladder-sdk", streaming_policy_name="Predefined_ClearKey"),
    )
    client.streaming_locators.create(
        GROUP,
        ACCOUNT,
        "sdk-download",
        StreamingLocator(asset_name="ladder-sdk", streaming_policy_name="Predefined_DownloadOnly"),
    )
    # Reading back: the SDK's models deserialize what the API answers, and it follows the
    # next links of one-item pages.
    locators = [l.name for l in client.streaming_locators.list(GROUP, ACCOUNT, top=1)]
    assert "sdk-clear" in locators and "sdk-clearkey" in locators, locators
    keys = client.streaming_locators.list_content_keys(GROUP, ACCOUNT, "sdk-clearkey").content_keys
    assert len(keys) == 1 and keys[0].type == "EnvelopeEncryption" and keys[0].value, keys

    answer = {}
    for name in ["sdk-clear", "sdk-clearkey", "sdk-download"]:
        paths = client.streaming_locators.list_paths(GROUP, ACCOUNT, name)
        answer[name] = {
            "streamingPaths": [
                {"protocol": p.streaming_protocol, "scheme": p.encryption_scheme, "paths": p.paths}
                for p in paths.streaming_paths
            ],
            "downloadPaths": paths.download_paths,
        }
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
