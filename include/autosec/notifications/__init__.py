"""Lifecycle notifications: which events go where, grouped per team, never as a storm.

Pure: the names of the events, the routes that subscribe to them (validated configuration), the
digest and rate-limit arithmetic and the texts people receive. The store keeps the events and
the deliveries; the Airflow layer's notifiers send the messages.
"""
