"""The serving instance's agent: publishes the scaling metric (to CloudWatch on AWS, to Cloud
Monitoring on GCP) and drains the replicas before the instance goes (see agent.py and
gcp_monitoring.py for the metric contracts)."""

from runtime.agent.agent import Agent, AgentConfig

__all__ = ["Agent", "AgentConfig"]
