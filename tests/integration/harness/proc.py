"""Reading a child's output line by line while the test goes on."""

import threading
import time


class LineReader:
    """Collects the lines of a text stream in a background thread."""

    def __init__(self, stream, name="stream"):
        self.lines = []
        self.name = name
        self.eof = False
        self._cond = threading.Condition()
        self._t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._t.start()

    def _run(self, stream):
        try:
            for line in iter(stream.readline, ""):
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        except (ValueError, OSError):
            pass
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def text(self):
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, predicate, timeout=15.0, start=0):
        """First line (index >= start) with predicate(line); returns (index, line)."""
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    if predicate(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise TimeoutError("%s: no matching line within %.1fs%s; got:\n%s"
                                       % (self.name, timeout, " (EOF)" if self.eof else "",
                                          "\n".join(self.lines[-20:])))
                self._cond.wait(min(left, 0.2))

    def wait_contains(self, needle, timeout=15.0, start=0):
        return self.wait_for(lambda l: needle in l, timeout, start)

    def join(self, timeout=5.0):
        self._t.join(timeout)
