"""Telling a job's client that it ended: signed webhook deliveries (Standard Webhooks).

    signing      the owner's secret (``whsec_``), its rotation, the signature headers
    deliveries   one message per end of a job: created, sent, retried from the database,
                 recorded attempt by attempt, redelivered by an operator

A delivery never runs inside the job: it is its own task on the ``webhooks`` queue, so a
receiver that hangs costs a webhooks worker its timeout, never a job its slot.
"""
