#!/bin/sh
# retake command check: is the clip at least N seconds long?
#
# Usage (retake runs it): min_duration.sh VIDEO_PATH, with the check's config as JSON on stdin,
# e.g. {"min_seconds": 2.5}. Prints {"results": [{"check": "min_duration", "score": …, "details": …}]}.
# Score: 1 when duration >= min_seconds, else duration / min_seconds. Needs ffprobe and awk.
set -eu

video="$1"
config="$(cat)"
min="$(printf '%s' "$config" | sed -n 's/.*"min_seconds"[[:space:]]*:[[:space:]]*\([0-9.][0-9.]*\).*/\1/p')"
[ -n "$min" ] || min=2

duration="$(ffprobe -v error -show_entries format=duration -of default=noprint_wrappers=1:nokey=1 "$video")" || {
    echo "ffprobe could not read $video" >&2
    exit 2
}

awk -v d="$duration" -v m="$min" 'BEGIN {
    s = (m > 0 && d < m) ? d / m : 1;
    if (s < 0) s = 0;
    printf "{\"results\": [{\"check\": \"min_duration\", \"score\": %.4f, \"details\": {\"duration_seconds\": %.3f, \"min_seconds\": %s}}]}\n", s, d, m
}'
