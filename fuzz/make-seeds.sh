#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/seeds/ from fixtures/: the fixtures are 100 KB to 650 KB,
# too big for a fuzzer to mutate usefully, so each is cut to its first 0.3 s (stream copy, same
# codec configuration) and written in every layout the indexer reads: progressive with moov
# first and last, fragmented without an index, with sidx (CMAF) and with mfra. The box-level
# targets get the moov, moof, sidx and mfra payloads of those files. Needs ffmpeg and python3.
set -euo pipefail
cd "$(dirname "$0")"
FF=(ffmpeg -nostdin -hide_banner -v error -y)
S=seeds
rm -rf "$S"
mkdir -p "$S"/{url,boxes,ism,moov,fragments,index,segments,documents,webvtt}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in ../fixtures/*/*.mp4; do
  case "$src" in *_300k.mp4 | *_600k.mp4 | *audio_fra.mp4) continue ;; esac  # same codecs as 150k / eng
  name=$(basename "$(dirname "$src")")_$(basename "$src" .mp4)
  "${FF[@]}" -i "$src" -t 0.3 -map 0 -c copy -movflags +faststart "$tmp/$name-progressive.mp4"
  "${FF[@]}" -i "$src" -t 0.3 -map 0 -c copy "$tmp/$name-moovlast.mp4"
  "${FF[@]}" -i "$src" -t 0.3 -map 0 -c copy -frag_duration 100000 \
    -movflags +frag_keyframe+empty_moov+default_base_moof+delay_moov+skip_trailer "$tmp/$name-fragmented.mp4"
  "${FF[@]}" -i "$src" -t 0.3 -map 0 -c copy -frag_duration 100000 \
    -movflags +cmaf+dash+global_sidx+delay_moov+skip_trailer "$tmp/$name-sidx.mp4"
  "${FF[@]}" -i "$src" -t 0.3 -map 0 -c copy -frag_duration 100000 \
    -movflags +frag_keyframe+empty_moov+default_base_moof+delay_moov "$tmp/$name-mfra.mp4"
done
cp "$tmp"/*.mp4 "$S/index/"
cp "$tmp"/*-progressive.mp4 "$tmp"/*-sidx.mp4 "$S/segments/"
cp "$tmp"/*-progressive.mp4 "$tmp"/*-fragmented.mp4 "$S/boxes/"

# Box payloads for the moov and fragments targets.
python3 - "$tmp" "$S" <<'PY'
import os, struct, sys
tmp, out = sys.argv[1], sys.argv[2]
def boxes(buf):
    at = 0
    while at + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[at:at + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", buf[at + 8:at + 16])[0], 16
        elif size == 0:
            size = len(buf) - at
        if size < head:
            return
        yield kind, buf[at + head:at + size]
        at += size
for name in sorted(os.listdir(tmp)):
    data = open(os.path.join(tmp, name), "rb").read()
    stem = name[:-4]
    moofs = 0
    for kind, payload in boxes(data):
        if kind == b"moov" and name.endswith("-progressive.mp4"):
            open(f"{out}/moov/{stem}", "wb").write(payload)
        elif kind == b"moof" and moofs < 2:
            open(f"{out}/fragments/{stem}-moof{moofs}", "wb").write(payload)
            moofs += 1
        elif kind in (b"sidx", b"mfra"):
            open(f"{out}/fragments/{stem}-{kind.decode()}", "wb").write(payload)
PY

cp ../fixtures/*/*.ism "$S/ism/"
cp ../fixtures/*/*.vtt "$S/webvtt/"
i=0
while IFS= read -r line; do
  [ -n "$line" ] && printf '%s' "$line" >"$S/url/seed-$((i++))"
done <<'URLS'
manifest(format=m3u8-cmaf)
manifest(format=mpd-time-cmaf,encryption=cenc,filter=first;second,audio-only=false).mpd
manifest(format=m3u8-aapl-v3,encryption=cbc).m3u8
QualityLevels(128000)/Manifest(aac_eng_2_128,format=m3u8-cmaf,encryption=cbcs-aapl,filter=x)
QualityLevels(3000000)/Fragments(video=i,format=mpd-time-csf).mp4
QualityLevels(128000)/Fragments(aac%20eng=1024,format=m3u8-cmaf,encryption=cenc).m4s
QualityLevels(150000)/Fragments(video=18446744073709551615,format=m3u8-aapl).ts
QualityLevels(1)/Fragments(vid%C3%A9o=900900,format=m3u8-aapl-v3,encryption=cbc)
URLS
echo "seeds: $(find "$S" -type f | wc -l) files, $(du -sh "$S" | cut -f1)"

# The documents target: a kind byte (0 asset, 1 streaming locator, 2 streaming policy, 3 content
# key policy, 4 filter) and an API body of that kind.
i=0
while IFS= read -r line; do
  [ -n "$line" ] && printf '%b%s' "\\x0${line%% *}" "${line#* }" >"$S/documents/seed-$((i++))"
done <<'DOCUMENTS'
0 {"properties": {"container": "ladder", "storageAccountName": "local", "description": "the ladder"}}
1 {"properties": {"assetName": "ladder", "streamingPolicyName": "Predefined_ClearKey", "startTime": "2026-01-01T00:00:00Z", "endTime": "2027-01-01T00:00:00.5+01:00", "filters": ["first4s"], "contentKeys": [{"id": "00112233-4455-6677-8899-aabbccddeeff", "labelReferenceInStreamingPolicy": "k", "value": "AAECAwQFBgcICQoLDA0ODw=="}]}}
2 {"properties": {"commonEncryptionCenc": {"enabledProtocols": {"download": false, "dash": true, "hls": true, "smoothStreaming": false}, "contentKeys": {"defaultKey": {"label": "k", "policyName": "p"}}, "drm": {"widevine": {"customLicenseAcquisitionUrlTemplate": "https://lic.example/{ContentKeyId}"}, "playReady": {"customLicenseAcquisitionUrlTemplate": "https://pr.example/{AlternativeMediaId}"}}}}}
3 {"properties": {"options": [{"name": "jwt", "configuration": {"@odata.type": "#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}, "restriction": {"@odata.type": "#Microsoft.Media.ContentKeyPolicyTokenRestriction", "issuer": "https://idp.example", "audience": "viewers", "primaryVerificationKey": {"@odata.type": "#Microsoft.Media.ContentKeyPolicySymmetricTokenKey", "keyValue": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, "alternateVerificationKeys": [{"@odata.type": "#Microsoft.Media.ContentKeyPolicyRsaTokenKey", "exponent": "AQAB", "modulus": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}], "requiredClaims": [{"claimType": "urn:microsoft:azure:mediaservices:contentkeyidentifier"}], "restrictionTokenType": "Jwt"}}]}}
3 {"properties": {"options": [{"name": "x509", "configuration": {"@odata.type": "#Microsoft.Media.ContentKeyPolicyClearKeyConfiguration"}, "restriction": {"@odata.type": "#Microsoft.Media.ContentKeyPolicyTokenRestriction", "issuer": "https://idp.example", "audience": "viewers", "primaryVerificationKey": {"@odata.type": "#Microsoft.Media.ContentKeyPolicyX509CertificateTokenKey", "rawBody": "MIIDDzCCAfegAwIBAgIUBO2lc/Stxp5kkY2L1sFZhVvZOmIwDQYJKoZIhvcNAQELBQAwFzEVMBMGA1UEAwwMdG9rZW4tc2lnbmVyMB4XDTI2MTIwNzExMzc1NFoXDTM2MTIwNDExMzc1NFowFzEVMBMGA1UEAwwMdG9rZW4tc2lnbmVyMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxfidl1HydnvYc8rchXmb2u3lTHRVhhoZl6a6+TaVLht3sGnkqmsh4Iz+Rx8AZxiwD8VMC086TKElB1OwWCBOn+ccej0g35hvEeqof5b6UTrDSlbH3rbGIuDE8dLxnlXXEFHVde13O8vUQNFlWnwhBz5NwkoX6sz5Ypx3IEFbjMVbad4H8SnVYDEe9QaOsjgcYw6hosz7C2hJc0DkVVJwSBdeP2gjS1bW3Na4SzURcKsJ4NS94D+l/YxJehsfejjZ56ViKk6feEhwR8NLFl8r2HGO/dRnIgUMR7ZWsp6ZFDi49rYAsWdjeMaH3U3dcV7tG6rVJR+6V2HvFEdmNFd57wIDAQABo1MwUTAdBgNVHQ4EFgQUVjHzCqJ7JMZ9fQWl3/KfGd/9IW8wHwYDVR0jBBgwFoAUVjHzCqJ7JMZ9fQWl3/KfGd/9IW8wDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAYl1dIy7j74UWjfnELnt/pdtcJsV7I066SBdrsaSAlK8LFB0wGtXkma09KgOnGyKusa4w2gAtuYMoZdpu4o2bNdX0ZkTFRW/IwKm4jlOKUO0+F/caq8PLrNcWC/rOd+qK9e/VjLSvpFlcFsCFCm8IYjAf8/Xc6tE8n2HQsOBM6NQhNd49uT8lQvn436qsx86duFcEZVcyZEMDMDANqCkKEr3Yjxxs9JyKdP9lvsCCnVWYSij/RGH1nTaKwyyYRgLRxhz6GvGOI+jR/hAshGg+5Qoq2bp9DJl6UHFNBkrYoY9U04PHutjGp0qQz+XdMNq2I541t5dDFIjceS7ah5BwXQ=="}, "requiredClaims": [{"claimType": "urn:example:entitlement", "claimValue": "premium"}], "restrictionTokenType": "Jwt"}}]}}
4 {"properties": {"presentationTimeRange": {"startTimestamp": 20000000, "endTimestamp": 90000000, "timescale": 10000000, "liveBackoffDuration": 0}, "firstQuality": {"bitrate": 300000}, "tracks": [{"trackSelections": [{"property": "Type", "operation": "Equal", "value": "Video"}, {"property": "Bitrate", "operation": "Equal", "value": "0-2427000"}]}, {"trackSelections": [{"property": "Language", "operation": "NotEqual", "value": "fr"}, {"property": "FourCC", "operation": "Equal", "value": "mp4a"}]}]}}
DOCUMENTS
