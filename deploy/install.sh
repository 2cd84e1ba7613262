#!/usr/bin/env bash
# Install maskstream into ./.venv with the pinned versions of deploy/constraints.txt.
#   bash deploy/install.sh          # what `maskstream run` needs (+ a local redis-server if none answers on 6379)
#   bash deploy/install.sh --test   # also what the test suite needs (pytest; redis-server; GStreamer RTSP server packages)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# Debian packages: redis-server (the tests start their own on a free port; `run` publishes to one).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian package)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

# Debian packages for the tests only: GStreamer's RTSP server, run by tests/rtsp_server.py under /usr/bin/python3.
if [[ $with_tests -eq 1 ]]; then
  rtsp_pkgs=(gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
             gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)
  missing=()
  for pkg in "${rtsp_pkgs[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]} (Debian packages, for the RTSP tests)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
extras="eval"
[[ $with_tests -eq 1 ]] && extras="eval,test"
.venv/bin/python -m pip install -q --disable-pip-version-check -c deploy/constraints.txt -e ".[${extras}]"

# The shipped pipeline.yaml publishes to redis://127.0.0.1:6379/0: start a throwaway server if none answers.
if [[ $with_tests -eq 0 ]] && ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "starting redis-server on 127.0.0.1:6379 (no persistence)" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
