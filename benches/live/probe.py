#!/usr/bin/env python3
"""Probes of the live benchmark (benches/live.sh), reading the events' folders in the local
storage the origin writes to, and the origin over HTTP.

  probe.py progress MEDIA FOLDER...
      One line per event folder: the folder and how far (seconds of event time) its slowest track
      has been stored: the end of its last fragment. Two readings SECS apart say whether ingest
      keeps up with real time.

  probe.py latency BASE MEDIA SECS LOCATOR:NAME:FOLDER...
      For SECS seconds, for each event, follows its lowest video track: when its track document
      names a new fragment, polls the live HLS media playlist (every 10 ms) until it lists the
      fragment, then GETs the segment until it answers 200. Prints one line per fragment:
      "latency_ms" = that first 200's wall clock minus the modification time of the fragment
      object in storage (written as soon as the fragment was complete, before the track document
      names it): arrival to availability, store time included. Prints "missed N" for fragments
      not available within 10 s.
"""

import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

POLL_S = 0.01
GIVE_UP_S = 10.0


def read_json(path):
    with open(path, "rb") as f:
        return json.load(f)


def track_docs(media, folder):
    """(key, document) of every track of the event, in the event document's order."""
    root = os.path.join(media, folder)
    try:
        keys = read_json(os.path.join(root, "live.json")).get("tracks", [])
    except (OSError, ValueError):
        return []
    docs = []
    for key in keys:
        try:
            docs.append((key, read_json(os.path.join(root, key, "track.json"))))
        except (OSError, ValueError):
            pass
    return docs


def end_seconds(doc):
    runs = doc.get("runs") or []
    if not runs:
        return 0.0
    last = runs[-1]
    return (last["t"] + last["d"] * last["count"]) / doc["timescale"]


def fragment_times(doc):
    out = set()
    for run in doc.get("runs") or []:
        out.update(run["t"] + k * run["d"] for k in range(run["count"]))
    return out


def progress(media, folders):
    for folder in folders:
        docs = track_docs(media, folder)
        ends = [end_seconds(doc) for _, doc in docs]
        print(folder, f"{min(ends):.3f}" if ends else "0", len(docs))


def get(url):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:
        return 0, b""


def video_playlist(base, locator, name, bitrate):
    """The absolute URL of the HLS media playlist of the video track of `bitrate`."""
    url = f"{base}/{locator}/{name}.ism/manifest(format=m3u8-cmaf)"
    status, body = get(url)
    if status != 200:
        return None
    lines = body.decode().splitlines()
    variants = [lines[i + 1].strip() for i, l in enumerate(lines[:-1]) if l.startswith("#EXT-X-STREAM-INF")]
    chosen = next((v for v in variants if f"QualityLevels({bitrate})" in v), variants[0] if variants else None)
    return urllib.parse.urljoin(url, chosen) if chosen else None


def follow(base, media, deadline, locator, name, folder, out, lock):
    root = os.path.join(media, folder)
    # The lowest video track, once the event has one.
    while time.time() < deadline:
        videos = [(doc["bitrate"], key) for key, doc in track_docs(media, folder) if doc.get("kind") == "video"]
        if videos:
            bitrate, key = min(videos)
            playlist = video_playlist(base, locator, name, bitrate)
            if playlist:
                break
        time.sleep(0.5)
    else:
        return
    doc_path = os.path.join(root, key, "track.json")
    known = fragment_times(read_json(doc_path))
    mtime = 0
    while time.time() < deadline:
        try:
            m = os.stat(doc_path).st_mtime_ns
        except OSError:
            m = mtime
        if m == mtime:
            time.sleep(POLL_S)
            continue
        mtime = m
        try:
            times = fragment_times(read_json(doc_path))
        except (OSError, ValueError):
            continue  # caught mid-replace: the next poll reads it
        new = sorted(times - known)
        known |= times
        for t in new:
            pattern = re.compile(rf"^[^#].*=({t})[,)]", re.M)
            segment = None
            give_up = time.time() + GIVE_UP_S
            status = 0
            while time.time() < give_up:
                if segment is None:
                    s, body = get(playlist)
                    found = pattern.search(body.decode(errors="replace")) if s == 200 else None
                    if found:
                        line = body.decode()[found.start():].splitlines()[0]
                        segment = urllib.parse.urljoin(playlist, line.strip())
                if segment is not None:
                    status, _ = get(segment)
                    if status == 200:
                        break
                time.sleep(POLL_S)
            available = time.time()
            with lock:
                if status == 200:
                    arrival = os.stat(os.path.join(root, key, f"{t}.m4s")).st_mtime
                    out.append((available - arrival) * 1000)
                else:
                    out.append(None)


def latency(base, media, secs, events):
    deadline = time.time() + secs
    out, lock = [], threading.Lock()
    threads = []
    for spec in events:
        locator, name, folder = spec.split(":", 2)
        t = threading.Thread(target=follow, args=(base, media, deadline, locator, name, folder, out, lock), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(secs + GIVE_UP_S + 5)
    missed = sum(1 for v in out if v is None)
    for v in out:
        if v is not None:
            print(f"{v:.1f}")
    print(f"missed {missed}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "progress" and len(sys.argv) >= 3:
        progress(sys.argv[2], sys.argv[3:])
    elif cmd == "latency" and len(sys.argv) >= 5:
        latency(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
