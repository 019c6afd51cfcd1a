"""Fork in a loop while SIGINTs arrive at random moments (run by test_interrupt.py).

Each SIGINT is taken as a first one, so poolscope's handler raises KeyboardInterrupt, now or
(through SIGALRM) a moment later. Raised inside a fork callback, it is printed as "Exception
ignored" and lost: the test looks for that line. Raised in this script's own lines, it is
ordinary code doing what it should (as is one raised in a handler interrupted by another), and
is swallowed here so that the loop goes on. Prints the
number of forks at the end.
"""

import os
import random
import signal
import sys
import time
import types

from poolscope.measure import _interrupt

_interrupt.install_sigint_handler()
# A handler interrupted by another one counts two signals: let that "second" return, not exit.
_interrupt._kill_children = lambda: None
_interrupt.os = types.SimpleNamespace(_exit=lambda code: None)
THIS_SCRIPT = sys._getframe().f_code


def swallowed_in_this_script(handler):
    def run(signum, frame):
        try:
            _interrupt._seen = 0  # every SIGINT is a first one
            handler(signum, frame)
        except KeyboardInterrupt:
            if frame is None or frame.f_code not in (THIS_SCRIPT, run.__code__):
                raise  # raised inside a fork callback: Python prints it as ignored
    return run


signal.signal(signal.SIGINT, swallowed_in_this_script(_interrupt._on_sigint))
signal.signal(signal.SIGALRM, swallowed_in_this_script(_interrupt._on_alarm))

seconds = float(sys.argv[1])
parent = os.getpid()
sender = os.fork()
if sender == 0:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(random.uniform(0, 0.002))
        try:
            os.kill(parent, signal.SIGINT)
        except ProcessLookupError:  # the parent failed: its output says why
            break
    os._exit(0)

forks = 0
while os.waitpid(sender, os.WNOHANG) == (0, 0):
    child = os.fork()
    if child == 0:
        os._exit(0)
    forks += 1
    os.waitpid(child, 0)
signal.setitimer(signal.ITIMER_REAL, 0)
print(forks)
