"""A killed benchmark runner stops its training child instead of leaving it to write on."""
import os
import signal
import subprocess
import sys
import textwrap
import time


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_the_runner_stops_its_training_child(tmp_path):
    pid_file = str(tmp_path / "child.pid")
    child = textwrap.dedent(f"""
        import os, time
        with open({pid_file!r} + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace({pid_file!r} + ".tmp", {pid_file!r})
        time.sleep(300)
    """)
    runner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from sfsc.benchmark.tables.child_process import exit_on_sigterm, run_to_end
        exit_on_sigterm()
        run_to_end([sys.executable, "-c", {child!r}])
    """)])
    pid = None
    try:
        deadline = time.time() + 120
        while not os.path.exists(pid_file):
            assert runner.poll() is None and time.time() < deadline
            time.sleep(0.05)
        with open(pid_file) as f:
            pid = int(f.read())
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 128 + signal.SIGTERM
        assert not _alive(pid)  # stopped and reaped by the runner before it exited
    finally:
        runner.kill()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
