"""Binary code reward through Sandbox-Fusion (``code_reward``), with extraction, test formats and endpoints."""

from verl_falcon_plugin.lazy import lazy_exports

_EXPORTS = {
    "code_reward": "verl_falcon_plugin.rewards.code.reward",
    "extract_code": "verl_falcon_plugin.rewards.code.extract",
    "detect_language": "verl_falcon_plugin.rewards.code.extract",
    "CodeBlock": "verl_falcon_plugin.rewards.code.extract",
    "parse_tests": "verl_falcon_plugin.rewards.code.tests",
    "sample_tests": "verl_falcon_plugin.rewards.code.tests",
    "TestCase": "verl_falcon_plugin.rewards.code.tests",
    "EndpointPool": "verl_falcon_plugin.rewards.code.endpoints",
    "AllEndpointsDown": "verl_falcon_plugin.rewards.code.endpoints",
    "shared_pool": "verl_falcon_plugin.rewards.code.endpoints",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
