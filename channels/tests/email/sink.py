"""A real SMTP sink for the email channel's tests: aiosmtpd on 127.0.0.1, writing each mail it
receives to DIR as NNNN.eml (envelope sender and recipients in NNNN.envelope), in order.

Usage: python3 sink.py DIR [fail-first]   -- prints "listening PORT" once it accepts
connections, and runs until killed or until its standard input closes. With fail-first, the
first mail is refused with a transient 451 (and DIR/refused-first is written), to prove that
the sender tries again.
"""

import pathlib
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, fail_first):
        self.directory = directory
        self.count = 0
        self.fail_next = fail_first

    async def handle_DATA(self, server, session, envelope):
        if self.fail_next:
            self.fail_next = False
            (self.directory / "refused-first").write_text("451\n")
            return "451 4.3.0 try again later"
        self.count += 1
        stem = self.directory / f"{self.count:04d}"
        (stem.with_suffix(".envelope")).write_text(
            envelope.mail_from + "\n" + "\n".join(envelope.rcpt_tos) + "\n"
        )
        # Written under a temporary name and renamed, so a reader never sees half a mail.
        partial = stem.with_suffix(".partial")
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(stem.with_suffix(".eml"))
        return "250 2.0.0 stored"


def main():
    directory = pathlib.Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(directory, "fail-first" in sys.argv[2:]), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
