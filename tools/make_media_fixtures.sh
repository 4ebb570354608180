#!/bin/sh
# Makes the small real media files the IMAGE / AUDIO / VIDEO tests decode, with the
# ffmpeg CLI and espeak-ng, into OUTDIR (created if missing). Nothing here is committed:
# the tests run this script into a temporary directory.
#
#   sh tools/make_media_fixtures.sh build/test-media
#
# Files (what the tests rely on):
#   speech.wav   espeak-ng speech, 22050 Hz mono 16-bit PCM (the duration reference)
#   speech.mp3   the same speech, MP3 (libmp3lame)
#   speech.ogg   the same speech, Ogg/Vorbis
#   tone.wav     1 kHz sine, 1 s, 44100 Hz stereo (exercises resampling and downmix)
#   video.mp4    20 frames at 10 fps, 64x48, frame N a flat grey of luma 20 + 10 N
#                (H.264 if libx264 is there, else MPEG-4 part 2)
#   video.mkv    the same frames, MPEG-4 part 2 in Matroska (no frame count in the header)
#   testsrc.png  ffmpeg's test pattern, 64x48 RGB
#   testsrc.jpg  the same pattern, JPEG
#   grad.png     32x16 gradient, pixel (x, y) = (8x, 16y, 128) exactly
#   grad.bmp     the same gradient, BMP
#   grad.gif     the same gradient, GIF
set -eu

OUT=${1:?usage: make_media_fixtures.sh OUTDIR}
for tool in ffmpeg espeak-ng; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "make_media_fixtures: '$tool' not found: install it (Debian: apt-get install ffmpeg espeak-ng)" >&2
    exit 2
  fi
done
mkdir -p "$OUT"
FF="ffmpeg -hide_banner -loglevel error -nostdin -y"

# Speech: espeak-ng writes a WAV itself; the compressed versions are made from it.
espeak-ng -v en -s 160 -w "$OUT/speech.wav" "the quick brown fox jumps over the lazy dog"
$FF -i "$OUT/speech.wav" -c:a libmp3lame -b:a 64k "$OUT/speech.mp3"
$FF -i "$OUT/speech.wav" -c:a libvorbis -q:a 4 "$OUT/speech.ogg"

# A pure tone for the filterbank check.
$FF -f lavfi -i "sine=frequency=1000:sample_rate=44100:duration=1" -ac 2 -c:a pcm_s16le "$OUT/tone.wav"

# Video: each frame a different flat grey, so decoded order is checkable.
SRC="color=c=black:s=64x48:r=10:d=2,format=gray,geq=lum='20+10*N'"
if ffmpeg -hide_banner -encoders 2>/dev/null | grep -q ' libx264 '; then
  VCODEC="-c:v libx264 -preset veryfast -qp 0"
else
  VCODEC="-c:v mpeg4 -q:v 1"
fi
# shellcheck disable=SC2086
$FF -f lavfi -i "$SRC" -frames:v 20 $VCODEC -pix_fmt yuv420p "$OUT/video.mp4"
$FF -f lavfi -i "$SRC" -frames:v 20 -c:v mpeg4 -q:v 1 -pix_fmt yuv420p "$OUT/video.mkv"

# Images.
$FF -f lavfi -i "testsrc=size=64x48:rate=1" -frames:v 1 -pix_fmt rgb24 "$OUT/testsrc.png"
$FF -f lavfi -i "testsrc=size=64x48:rate=1" -frames:v 1 -q:v 3 "$OUT/testsrc.jpg"
GRAD="nullsrc=s=32x16:r=1,format=rgb24,geq=r='8*X':g='16*Y':b=128"
$FF -f lavfi -i "$GRAD" -frames:v 1 -pix_fmt rgb24 "$OUT/grad.png"
$FF -f lavfi -i "$GRAD" -frames:v 1 -pix_fmt bgr24 "$OUT/grad.bmp"
$FF -f lavfi -i "$GRAD" -frames:v 1 "$OUT/grad.gif"
echo "make_media_fixtures: wrote $(ls "$OUT" | wc -l) files to $OUT"
