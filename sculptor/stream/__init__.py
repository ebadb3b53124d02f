"""Shop-floor streaming over serial: never lose a line, survive faults, resume.

* `program`   - load a G-code program and check it against the controller before
  anything moves (line length, characters, buffer size); modal state per line.
* `machine`   - the senders, pure state machines (grbl character counting, plain ack,
  Marlin line numbers + checksums) behind one interface and a registry.
* `link`      - the one I/O thread that owns the serial port.
* `resume`    - where a broken stream restarts (journal + the controller's position).
* `runner`    - `stream_program`, the one call `sculptor stream` makes.
"""

from sculptor.stream.machine import SENDERS, Item, Sender, State, make_sender
from sculptor.stream.program import Program, ProgramLine, load_program
from sculptor.stream.runner import StreamSummary, Streamer, stream_program

__all__ = ["Item", "Program", "ProgramLine", "SENDERS", "Sender", "State", "StreamSummary",
           "Streamer", "load_program", "make_sender", "stream_program"]
