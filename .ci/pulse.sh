#!/bin/sh
# A private PulseAudio daemon with a null sink, for the real playback test.
#
#   .ci/pulse.sh start DIR [RATE]   start it (sink "voicebridge_null", mono s16le at RATE Hz,
#                                   default 22050); its socket is DIR/native. Prints the line
#                                   PULSE_SERVER=unix:DIR/native  (export it for PyAudio and parec)
#   .ci/pulse.sh stop DIR           stop that daemon (the one whose pid file is in DIR)
#
# Works as root and as a normal user: the daemon runs in per-user mode with HOME, the runtime and
# state directories inside DIR, loads no default script (-n), never exits when idle and accepts
# anonymous clients on its own socket only. Nothing outside DIR is touched.
set -eu

command=${1:?usage: pulse.sh start|stop DIR [RATE]}
dir=${2:?usage: pulse.sh start|stop DIR [RATE]}
rate=${3:-22050}
sink=voicebridge_null

export HOME="$dir" XDG_RUNTIME_DIR="$dir" PULSE_RUNTIME_PATH="$dir/pulse" PULSE_STATE_PATH="$dir/state"
unset PULSE_SERVER

case "$command" in
start)
  command -v pulseaudio >/dev/null || { echo "pulse.sh: pulseaudio is not installed" >&2; exit 2; }
  mkdir -p "$dir/pulse" "$dir/state"
  timeout 20 pulseaudio --daemonize=yes --system=false -n --exit-idle-time=-1 \
    --use-pid-file=yes --log-target="file:$dir/pulseaudio.log" \
    --load="module-native-protocol-unix socket=$dir/native auth-anonymous=1" \
    --load="module-null-sink sink_name=$sink rate=$rate channels=1 format=s16le" \
    || { echo "pulse.sh: pulseaudio did not start, see $dir/pulseaudio.log" >&2; exit 1; }
  i=0
  until PULSE_SERVER="unix:$dir/native" timeout 5 pactl info >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || { echo "pulse.sh: no answer on $dir/native" >&2; exit 1; }
    sleep 0.1
  done
  PULSE_SERVER="unix:$dir/native" pactl set-default-sink "$sink"
  echo "PULSE_SERVER=unix:$dir/native"
  ;;
stop)
  pidfile="$dir/pulse/pid"
  [ -f "$pidfile" ] || exit 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || exit 0
  i=0
  while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 50 ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
    sleep 0.1
  done
  ;;
*)
  echo "usage: pulse.sh start|stop DIR [RATE]" >&2
  exit 2
  ;;
esac
