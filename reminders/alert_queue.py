"""Staff alerts on a queue of their own, taken by a consumer of their own in the worker.

A crisis alert must not wait behind a backlog of reminders: with every slot of the worker's pool
busy sending paced batches to a slow provider, an alert handed to the same queue waited for a
free slot (54 s in one run, 149 s for the fortieth). Alerts go to the `alerts` queue instead, which
the pool never consumes: a consumer thread in the worker's main process takes them, and up to
ALERT_SENDERS are sent at once, each from a thread with its own database sessions and provider
clients, so an SMS alert and an email alert never wait for each other.

A message is acknowledged as soon as it is taken: the database is the schedule. An alert a
worker took and never claimed (the worker was killed) is still `queued`; the process that handed
it out sends it after ALERT_CLAIM_WAIT (reminders.dispatch), and beat's pass hands it out again
after a minute (reminders.outbox.moves.REQUEUE_ALERT_AFTER). Claiming is a conditional UPDATE, so
an alert is sent once whoever gets to it.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from kombu import Exchange, Queue
from kombu.mixins import ConsumerMixin

log = logging.getLogger(__name__)

ALERT_QUEUE = "alerts"
ALERT_SENDERS = 4
# On a warm shutdown the alerts in hand are finished; a provider call has a timeout of its own.
FINISH_WAIT = 30.0


def alert_queue() -> Queue:
    """The queue Celery routes `send_task(..., queue=ALERT_QUEUE)` to (a direct exchange of its name)."""
    return Queue(ALERT_QUEUE, Exchange(ALERT_QUEUE, type="direct"), routing_key=ALERT_QUEUE)


def outbox_ids(body) -> list[int]:
    """The row ids a send task carries: Celery's message body is (args, kwargs, embed), and the
    task's only argument is the list of ids."""
    args = body[0] if isinstance(body, (list, tuple)) and body else []
    ids = args[0] if args else []
    return [int(i) for i in (ids if isinstance(ids, list) else [ids])]


class AlertConsumer(ConsumerMixin):
    """Takes alert messages from the broker and sends each in a thread of its own."""

    def __init__(self, connection, send: Callable[[list[int]], object]):
        self.connection = connection
        self.send = send
        self.senders = ThreadPoolExecutor(ALERT_SENDERS, thread_name_prefix="reminders-alert")

    def get_consumers(self, Consumer, channel):
        return [Consumer(queues=[alert_queue()], callbacks=[self.on_message], accept=["json"],
                         prefetch_count=ALERT_SENDERS)]

    def on_message(self, body, message) -> None:
        try:
            ids = outbox_ids(body)
        except (TypeError, ValueError):
            log.error("an alert message without outbox ids was dropped")
            message.ack()
            return
        message.ack()
        self.senders.submit(self._send, ids)

    def _send(self, ids: list[int]) -> None:
        try:
            self.send(ids)
        except Exception:  # noqa: BLE001 - the row stays queued: the web's watch or the next pass sends it
            log.exception("sending staff alert(s) %s failed; the next pass hands them out again", ids)

    def on_connection_error(self, exc, interval) -> None:
        log.warning("alert queue: broker connection lost (%s); trying again in %.0f s", exc, interval)


class AlertConsumerThread:
    """The consumer running in a thread of the worker's main process (started and stopped with it)."""

    def __init__(self, connection, send: Callable[[list[int]], object]):
        self.consumer = AlertConsumer(connection, send)
        self.thread = threading.Thread(target=self._run, name="reminders-alert-queue", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self.consumer.run()
        except Exception:  # noqa: BLE001 - logged: alerts then go through the web's watch and the pass
            log.exception("the alert queue's consumer stopped; alerts are sent by the web process and the pass")

    def stop(self) -> None:
        if self.consumer.should_stop:
            return
        self.consumer.should_stop = True
        self.thread.join(FINISH_WAIT)
        self.consumer.senders.shutdown(wait=True, cancel_futures=False)
        try:
            self.consumer.connection.release()
        except Exception:  # noqa: BLE001 - shutting down
            pass

    terminate = shutdown = stop
