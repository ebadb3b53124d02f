"""A virtual serial controller for rehearsing and testing `sculptor stream`.

It speaks three dialects over a real pseudo-terminal:

* ``grbl``   - character counting against a ``rx_buffer``-byte receive ring that *drops*
  bytes when overrun (like the firmware's serial ISR), ``ok`` / ``error:N`` / ``ALARM:N``,
  ``<...>`` status reports, ``[MSG:...]``, real-time ``?`` ``!`` ``~`` and 0x18 (soft
  reset), ``$C`` check mode, ``$I`` build info, ``$X`` unlock, ``$H`` home;
* ``marlin`` - ``N<n> ... *<xor>`` framing with ``Resend: n`` on a bad checksum or line
  number, ``ok`` when queued, ``echo:busy: processing`` keep-alives;
* ``ack``    - plain send-and-wait: ``ok`` once a line has been *executed*, ``busy``
  keep-alives while a move runs.

Joint moves ``G1 X.. Y.. Z.. A.. B.. C.. U.. F..`` (G93 inverse time or G94 units/min) run
in virtual time, ``time_scale`` times faster than the wall clock. Faults can be injected
(:class:`Faults`): dropped or corrupted bytes in either direction, a controller that goes
silent, an unplugged port, an error or alarm at program line k.

    >>> served = serve("grbl", time_scale=50)      # doctest: +SKIP
    >>> served.port                                  # '/dev/pts/7', usable by pyserial
    >>> served.stop()
"""

from sim.controller.core import GRBL_ERRORS, Faults, VirtualController
from sim.controller.pty_server import ServedController, serve, serve_cli

__all__ = ["Faults", "GRBL_ERRORS", "ServedController", "VirtualController", "serve",
           "serve_cli"]
