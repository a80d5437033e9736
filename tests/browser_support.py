"""Helpers of the browser tests (tests/test_browser.py): Chromium, a live server, a fake camera, the data.

Chromium is Debian's (/usr/bin/chromium) driven by the PyPI package ``playwright`` (its own driver; no
``playwright install``). A machine without Chromium FAILS the browser tests, with the command to install it
(``scripts/test`` installs it when absent); they are never skipped.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import qrcode
from flask import Flask, request
from PIL import Image
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from logistique import create_app
from logistique.db import db
from logistique.domain import assignments, devices, pupils, slips
from logistique.models import DeviceCondition, Slip

CHROMIUM = os.environ.get("LOGISTIQUE_CHROMIUM", "/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "fr-FR",
    "timezone_id": "Europe/Paris",
}
TIMEOUT_MS = 15_000


def require_chromium() -> str:
    """The Chromium executable, or a failure saying how to install it."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"Chromium est absent ({CHROMIUM}) : installez-le avec « {INSTALL} »"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "le paquet Python playwright manque : scripts/setup --test (extra « test »)"
    if problem:
        pytest.fail(
            f"Tests navigateur impossibles : {problem}. scripts/test installe Chromium s'il manque.",
            pytrace=False,
        )
    return CHROMIUM


def fake_camera_args(video: Path) -> list[str]:
    """Chromium flags: a camera that films ``video`` (a .y4m file, looped) and needs no permission prompt."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


# ---------------------------------------------------------------- live server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request would drown pytest's output
        pass


CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; manifest-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy the pages must work under (issue 10's): no inline script or style, no eval;
WebAssembly compiled (the barcode decoder), a service worker, a manifest, the camera's blob: video. Added by
the test server when the app does not send one itself."""


def _strict_csp(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response


class LiveServer:
    """The app served over real HTTP on 127.0.0.1 (random port) by a threaded werkzeug server, under CSP."""

    def __init__(self, config: dict) -> None:
        self.app: Flask = create_app({**config, "BASE_URL": "http://127.0.0.1"})
        self.app.after_request(_strict_csp)
        self.hits: list[str] = []  # every path the server was asked for, in order (offline tests)
        self.app.before_request(lambda: self.hits.append(request.path))
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.app.config["BASE_URL"] = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        with self.app.app_context():
            db.get_engine().dispose()


@contextmanager
def live_server(app: Flask) -> Iterator[LiveServer]:
    """A server of its own for a test, on ``app``'s database and secret, with CSRF protection ON."""
    config = {
        key: app.config[key]
        for key in ("TESTING", "DATABASE_URL", "SECRET_KEY", "DEMO_MODE")
        if key in app.config
    }
    with LiveServer({**config, "WTF_CSRF_ENABLED": True}) as server:
        yield server


# ---------------------------------------------------------------- fake camera


def qr_image(text: str) -> Image.Image:
    """The QR code of ``text``, one pixel per module, with its quiet zone."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("L")


def code128_image(text: str) -> Image.Image:
    """The Code 128 barcode of ``text`` (as on a device label), one pixel per module, with quiet zones."""
    import zxingcpp

    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    return Image.fromarray(barcode.to_image(scale=1, add_quiet_zones=True)).convert("L")


def _frame(code: Image.Image, width: int, height: int) -> bytes:
    """The grey plane of one frame: ``code`` enlarged by whole pixels per module, centred on white."""
    square = code.height > code.width / 3  # a QR code; a barcode is wide and low
    scale = max(1, (min(width, height) * 3 // 4 if square else width * 17 // 20) // code.width)
    size = (code.width * scale, code.height * scale if square else height // 3)
    big = code.resize(size, Image.Resampling.NEAREST)
    frame = Image.new("L", (width, height), 255)
    frame.paste(big, ((width - size[0]) // 2, (height - size[1]) // 2))
    return frame.tobytes()


def y4m(path: Path, scenes: list[tuple[Image.Image, int]], *, width: int = 640, height: int = 480) -> Path:
    """A Y4M video (4:2:0, grey, 10 frames a second) showing each code of ``scenes`` for its number of
    frames, as a phone camera would film labels one after the other (Chromium loops it)."""
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    out = io.BytesIO()
    out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode("ascii"))
    for code, frames in scenes:
        luma = _frame(code, width, height)
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(luma)
            out.write(chroma)  # U
            out.write(chroma)  # V
    path.write_bytes(out.getvalue())
    return path


def qr_y4m(text: str, path: Path, *, width: int = 640, height: int = 480, frames: int = 3) -> Path:
    """A short Y4M video showing the QR code of ``text`` on white."""
    return y4m(path, [(qr_image(text), frames)], width=width, height=height)


# ---------------------------------------------------------------- data


def issued_slip(world: SimpleNamespace) -> Slip:
    """A pupil of the Roubaix association with a tablet and a 4G key assigned, on a slip issued from the
    Lille warehouse (committed). Sets world.pupil, world.slip, world.on_slip (the two devices) and
    world.off_slip (a device of the same warehouse that is not on the slip)."""
    session = db.session
    world.pupil = pupils.register_pupil(
        session,
        pupils.PupilData(
            "Léa",
            "Martin",
            "CM2",
            "0750654D",
            "QN05981M",
            "Sophie Martin",
            "06 12 34 56 78",
            "tablette+connexion",
        ),
        by=world.coordinator,
    )
    world.on_slip = [world.device, world.device3]  # Galaxy Tab A and Huawei E5576, both in Lille
    for device in world.on_slip:
        assignments.assign(session, pupil=world.pupil, device=device, by=world.coordinator)
    world.off_slip = world.device2
    world.slip = slips.create_slip(
        session,
        destination=world.assoc_roubaix,
        serials=[d.serial for d in world.on_slip],
        by=world.coordinator,
        issue=True,
    )
    session.commit()
    return world.slip


NAMES = [
    "Aubert",
    "Benali",
    "Carpentier",
    "Diallo",
    "Evrard",
    "Fontaine",
    "Gomes",
    "Hamel",
    "Idrissi",
    "Jacquet",
]


def slip_of(world: SimpleNamespace, count: int) -> tuple[Slip, list]:
    """``count`` pupils of the Roubaix association, each with a new tablet of the Lille warehouse assigned,
    all on one slip issued from Lille (committed). Returns the slip and its devices in order."""
    session = db.session
    tablets = []
    for i in range(1, count + 1):
        pupil = pupils.register_pupil(
            session,
            pupils.PupilData(
                "Camille",
                NAMES[i],
                "6E",
                "0750654D",
                "QN05981M",
                f"Dominique {NAMES[i]}",
                "0600000000",
                "tablette",
            ),
            by=world.coordinator,
        )
        tablet = devices.receive_device(
            session,
            lot=world.lot,
            model=world.tablet,
            serial=f"SN-TAB-{i:03d}",
            condition=DeviceCondition.REFURBISHED,
            by=None,
        )
        assignments.assign(session, pupil=pupil, device=tablet, by=world.coordinator)
        tablets.append(tablet)
    slip = slips.create_slip(
        session,
        destination=world.assoc_roubaix,
        serials=[t.serial for t in tablets],
        by=world.coordinator,
        issue=True,
    )
    session.commit()
    return slip, tablets


def fresh() -> None:
    """Forget what the test's session holds (and end its transaction): the next reads see the server's
    commits."""
    db.session.rollback()
    db.session.expire_all()
