"""The serving instance's agent: publishes the scaling metric to CloudWatch and drains the
replicas before Auto Scaling terminates the instance (see agent.py for the metric contract)."""

from runtime.agent.agent import Agent, AgentConfig

__all__ = ["Agent", "AgentConfig"]
