"""gunicorn settings for ``parkinglot serve``.

Each worker builds its own app (no preload: engines and the recogniser must not
be shared across fork), then warms the recogniser and the numba kernels once,
before it takes its first request.
"""
import os

wsgi_app = "parkinglot.web:create_app()"
bind = os.environ.get("PARKINGLOT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("PARKINGLOT_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("PARKINGLOT_THREADS", "4"))
preload_app = False
timeout = 60
graceful_timeout = 20
# No keep-alive by default: a kept-alive connection stays with the worker that accepted
# it, and under load all the lane controllers' connections ended up on one worker (one
# core at 100 %, the other idle; measured with 4 persistent clients). Closing after each
# reply lets every request go to whichever worker is free. On a LAN a new connection
# costs well under a millisecond.
keepalive = int(os.environ.get("PARKINGLOT_KEEPALIVE", "0"))
max_requests = 0
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("PARKINGLOT_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
limit_request_line = 8190


def post_fork(server, worker):  # noqa: D401 - gunicorn hook
    """JSON log lines for the application loggers in every worker."""
    from parkinglot.logs import configure

    configure(os.environ.get("PARKINGLOT_LOG_LEVEL", "INFO").upper())


def post_worker_init(worker):  # noqa: D401 - gunicorn hook
    """Load the recogniser and compile/warm the kernels once per worker, after fork."""
    if os.environ.get("PARKINGLOT_WARM_RECOGNIZER", "1").lower() in ("0", "false", "no"):
        worker.log.info("worker %s: recogniser warm-up skipped (PARKINGLOT_WARM_RECOGNIZER=0)", worker.pid)
        return
    import torch

    # one recogniser thread per worker: workers x threads should not exceed the cores
    torch.set_num_threads(int(os.environ.get("PARKINGLOT_TORCH_THREADS", "1")))
    from parkinglot.lpr.pipeline import warm_up

    warm_up()
    worker.log.info("worker %s: recogniser and kernels warm", worker.pid)
