"""Serve one H.264 MP4 file over RTSP with GStreamer's RTSP server, like an IP camera, for the tests.

Run it with Debian's ``/usr/bin/python3`` (the ``gi`` bindings are not in the venv)::

    /usr/bin/python3 tests/rtsp_server.py FILE [--port PORT] [--path PATH] [--shared]

- Listens on 127.0.0.1 only; ``--port 0`` (the default) picks a free port.
- Once listening, prints one line ``READY rtsp://127.0.0.1:<port>/<path>`` to stdout.
- Serves the file at its own frame rate (the pipeline is paced by its clock), once, from the
  start, to each client; with ``--shared`` all clients see one live stream instead (a client
  joins it where it is, from the next keyframe: the media answers that it cannot seek).
- Exits on SIGTERM/SIGINT, or when its stdin reaches end-of-file (its parent went away).
  Needs the Debian packages ``gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly``
  (``bash deploy/install.sh --test`` installs them); exits with status 3 if they are missing.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

LAUNCH = "( filesrc location={location} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
PACKAGES = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="an MP4 file with an H.264 video track")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--path", default="cam", help="mount path, without the leading slash")
    parser.add_argument("--shared", action="store_true", help="one live stream shared by every client")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.file):
        print(f"rtsp_server: no such file: {args.file}", file=sys.stderr, flush=True)
        return 2

    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"rtsp_server: GStreamer RTSP server bindings missing ({exc}); apt-get install -y {PACKAGES}",
              file=sys.stderr, flush=True)
        return 3
    Gst.init(None)
    elements = ("filesrc", "qtdemux", "h264parse", "rtph264pay")
    missing = [name for name in elements if Gst.ElementFactory.find(name) is None]
    if missing:
        print(f"rtsp_server: GStreamer elements missing: {', '.join(missing)}; apt-get install -y {PACKAGES}",
              file=sys.stderr, flush=True)
        return 3

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = os.path.abspath(args.file).replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(LAUNCH.format(location=f'"{location}"'))
    factory.set_shared(args.shared)
    server.get_mount_points().add_factory("/" + args.path.lstrip("/"), factory)

    if args.shared:
        # FFmpeg's PLAY asks for "Range: npt=0.000-", which would seek a shared, file-backed media
        # back to its start for every client. A camera cannot seek: answer "not seekable" (a
        # SEEKING query handled without an answer says so; PyGObject cannot write the query).
        def not_seekable(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            query = info.get_query()
            if query is None or query.type != Gst.QueryType.SEEKING:
                return Gst.PadProbeReturn.OK
            return Gst.PadProbeReturn.HANDLED

        def on_media(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
            pad = media.get_element().get_by_name("pay0").get_static_pad("src")
            pad.add_probe(Gst.PadProbeType.QUERY_UPSTREAM, not_seekable)

        factory.connect("media-configure", on_media)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 2

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return False  # remove the source

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, quit_loop)

    def on_stdin(fd: int, condition: int) -> bool:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.quit()
            return False
        return True  # anything written to stdin is ignored

    GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, sys.stdin.fileno(),
                          GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR, on_stdin)

    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}/{args.path.lstrip('/')}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
