"""Escalation rules, priority and SLA, queues, routing, business hours and the agent context packet."""
