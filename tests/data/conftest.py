import pytest


@pytest.fixture(scope="session")
def chat_tokenizer():
    from verl_falcon_plugin.data.tiny_chat_tokenizer import build_chat_tokenizer

    return build_chat_tokenizer()
