"""The event stream pushes alerts of the viewer's site as they open."""
import json
import threading
import time

import requests
import waitress

from app.alerts.operations import raise_alert
from app.models import Site, db
from tests.factories import Kitchen


def test_the_stream_pushes_a_new_alert_of_the_site_only(app, kitchen):
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()
    try:
        session = requests.Session()
        base = f"http://127.0.0.1:{port}"
        assert session.post(f"{base}/pin/{kitchen['cook']}", data={"pin": Kitchen.PINS["cook"]},
                            allow_redirects=False).status_code == 302
        received = []

        def listen():
            with session.get(f"{base}/events", stream=True, timeout=20) as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                for line in response.iter_lines(decode_unicode=True):
                    if line.startswith("data:"):
                        received.append((time.monotonic(), json.loads(line[5:])))
                        if len(received) >= 1:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(1.0)  # the stream starts after what is already stored
        with app.app_context():
            other = Site(name="Elsewhere", timezone="UTC")
            db.session.add(other)
            db.session.flush()
            raise_alert(db.session, site_id=other.id, kind="offline", subject="elsewhere:1")
            db.session.commit()
            opened = time.monotonic()
            raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="here:1",
                        detail={"title": "Prep fridge: no readings"})
            db.session.commit()
        listener.join(10)
        assert len(received) == 1
        at, data = received[0]
        assert data["subject"] == "here:1" and data["title"] == "Prep fridge: no readings"
        assert at - opened < 1.0
        assert requests.get(f"{base}/events", allow_redirects=False).status_code in (302, 401)
    finally:
        server.close()
