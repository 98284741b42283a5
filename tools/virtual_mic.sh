#!/bin/sh
# A real virtual microphone for tests and CI: a private PulseAudio daemon with a null sink.
#
# Whatever is played into the sink "livetex_sink" can be recorded from its monitor source
# "livetex_sink.monitor", which is made the default input; PortAudio (sounddevice) reaches it
# through ALSA's "pulse"/"default" devices (Debian: libasound2-plugins).
#
#   tools/virtual_mic.sh start [DIR]   start the daemon (socket in DIR, default /tmp/livetex-pulse-$(id -u));
#                                      prints the environment clients need, e.g.  eval "$(tools/virtual_mic.sh start)"
#   tools/virtual_mic.sh env [DIR]     print that environment again
#   tools/virtual_mic.sh status [DIR]  exit 0 if the daemon answers (and list sinks/sources)
#   tools/virtual_mic.sh play FILE [DIR]   play an audio file into the sink (any format ffmpeg reads)
#   tools/virtual_mic.sh stop [DIR]    stop the daemon
#
# Needs (Debian/Ubuntu): apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 ffmpeg
# Works as root: the daemon runs in user mode (--system=false) with its own runtime directory, so it
# never touches a desktop session's PulseAudio.
set -eu

cmd=${1:-}
case "$cmd" in
  play) file=${2:?usage: virtual_mic.sh play FILE [DIR]}; dir=${3:-/tmp/livetex-pulse-$(id -u)} ;;
  *) dir=${2:-/tmp/livetex-pulse-$(id -u)} ;;
esac
SINK=livetex_sink

export PULSE_RUNTIME_PATH="$dir"
export PULSE_STATE_PATH="$dir/state"
export PULSE_SERVER="unix:$dir/native"

print_env() {
  echo "export PULSE_RUNTIME_PATH='$dir'"
  echo "export PULSE_SERVER='unix:$dir/native'"
  echo "export PULSE_SINK='$SINK'"
  echo "export PULSE_SOURCE='$SINK.monitor'"
}

alive() { pactl info >/dev/null 2>&1; }

case "$cmd" in
  start)
    mkdir -p "$dir/state"
    chmod 700 "$dir"
    if ! alive; then
      # -n: no default.pa (no hardware probing); the null sink is the only device.
      # --exit-idle-time=-1 / --disallow-exit: stays up between test runs and ignores client "exit".
      pulseaudio -D -n --system=false --exit-idle-time=-1 --disallow-exit --disallow-module-loading=false \
        --use-pid-file=yes --log-target=file:"$dir/pulse.log" \
        --load="module-native-protocol-unix auth-anonymous=1 socket=$dir/native" \
        --load="module-null-sink sink_name=$SINK rate=48000 sink_properties=device.description=livetex_virtual_sink" \
        2>>"$dir/pulse.log" || true
      i=0
      until alive; do
        i=$((i + 1))
        if [ "$i" -gt 50 ]; then
          echo "virtual_mic: PulseAudio did not start; log: $dir/pulse.log" >&2
          tail -5 "$dir/pulse.log" >&2 || true
          exit 1
        fi
        sleep 0.1
      done
    fi
    pactl set-default-sink "$SINK"
    pactl set-default-source "$SINK.monitor"
    print_env
    ;;
  env) print_env ;;
  status)
    alive || { echo "virtual_mic: no daemon at $dir" >&2; exit 1; }
    pactl list short sinks
    pactl list short sources
    ;;
  play)
    alive || { echo "virtual_mic: no daemon at $dir (run: $0 start)" >&2; exit 1; }
    # Decode anything to WAV on the fly; pacat plays it into the sink at its own rate.
    ffmpeg -loglevel error -nostdin -i "$file" -f wav -ac 2 -ar 48000 - | pacat --device="$SINK" --file-format=wav
    ;;
  stop)
    if alive; then
      pid=$(cat "$dir/pid" 2>/dev/null || true)
      if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
      i=0
      while alive && [ "$i" -lt 30 ]; do i=$((i + 1)); sleep 0.1; done
    fi
    ;;
  *)
    sed -n '2,17p' "$0" >&2
    exit 2
    ;;
esac
