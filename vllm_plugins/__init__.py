"""vLLM plugins: DeepConf confidence maths, voting, the online controller and the logits processor."""
