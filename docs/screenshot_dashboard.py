"""Takes docs/tensorboard_dashboard.png: TensorBoard's Custom Scalars tab
showing the counter's dashboard after a short real fit.

Not run by the test suite (it needs a browser). Rerun it after changing
the layout (keras_stepcounter/dashboard.py):

    apt-get install -y chromium        # Debian's package, as root
    python docs/screenshot_dashboard.py [--out docs/tensorboard_dashboard.png]

It trains a small model for a few seconds with `step_time_stats`,
`goodput` and `stall_secs` on, writing to a fresh temporary log directory;
starts TensorBoard there on a free loopback port; waits until TensorBoard
serves the layout and the last fit's ledger; and has headless Chromium
load the Custom Scalars tab and save a screenshot. Nothing leaves the
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
WINDOW = "1400,1000"
WAIT_SECS = 120.0


def train(log_dir: str) -> None:
    """Two short fits of a small MLP, with the dashboard's tags recorded."""
    import numpy as np
    import tensorflow as tf

    import keras_stepcounter

    keras = tf.keras
    rng = np.random.default_rng(0)
    x = rng.random((4096, 32), dtype=np.float32)
    y = rng.random((4096, 1), dtype=np.float32)
    model = keras.Sequential(
        [keras.Input((32,)), keras.layers.Dense(256, activation="relu"),
         keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    counter = keras_stepcounter.StepCounter(
        every_n_steps=16,
        output_dir=os.path.join(log_dir, "train"),
        batch_size=32,
        step_time_stats=True,
        goodput=True,
        stall_secs="auto",
    )
    for _ in range(2):  # Two fits: two points per goodput bucket.
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[counter])
    counter.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def wait_until(server: subprocess.Popen, url: str, ready: Callable[[Any], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"TensorBoard exited with code {server.returncode}")
        try:
            if ready(get_json(url)):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass  # Not listening yet.
        time.sleep(0.5)
    sys.exit(f"TensorBoard did not serve {url} in {WAIT_SECS:.0f} s")


def screenshot(browser: str, url: str, out: Path, profile: str) -> None:
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--screenshot={out}",
        f"--window-size={WINDOW}",
        # Time for the page's scripts to fetch the layout and draw charts.
        "--virtual-time-budget=20000",
        url,
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=180)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "tensorboard_dashboard.png")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    if not shutil.which(args.browser):
        sys.exit(f"no browser {args.browser!r}: apt-get install -y chromium")

    with tempfile.TemporaryDirectory() as work:
        log_dir = os.path.join(work, "logs")
        train(log_dir)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", log_dir,
             "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            # The ledger table is the last record written: all is loaded.
            wait_until(server, f"{base}/data/plugin/text/tags",
                       lambda tags: "goodput/ledger" in tags.get("train", []))
            wait_until(server, f"{base}/data/plugin/custom_scalars/layout", bool)
            profile = os.path.join(work, "chromium-profile")
            os.mkdir(profile)
            screenshot(args.browser, f"{base}/#custom_scalars", args.out.resolve(), profile)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
