"""Code extraction and language detection, table-driven."""

from __future__ import annotations

import pytest

from verl_falcon_plugin.rewards.code.extract import SANDBOX_LANGUAGE, detect_language, extract_code

UNTAGGED = {
    "python": "import sys\n\ndef solve():\n    n = int(input())\n    print(n * 2)\n\nif __name__ == '__main__':\n    solve()\n",
    "cpp": "#include <bits/stdc++.h>\nusing namespace std;\nint main() {\n    int n; cin >> n;\n    cout << n * 2 << endl;\n}\n",
    "c": '#include <stdio.h>\nint main(void) {\n    int n;\n    scanf("%d", &n);\n    printf("%d\\n", n * 2);\n    return 0;\n}\n',
    "java": "import java.util.*;\npublic class Main {\n    public static void main(String[] args) {\n"
    "        Scanner s = new Scanner(System.in);\n        System.out.println(s.nextInt() * 2);\n    }\n}\n",
    "javascript": "const lines = require('fs').readFileSync(0, 'utf8').split('\\n');\n"
    "const n = parseInt(lines[0]);\nconsole.log(n * 2);\n",
    "bash": "#!/bin/bash\nread n\necho $((n * 2))\n",
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n    var n int\n    fmt.Scan(&n)\n    fmt.Println(n * 2)\n}\n',
}


@pytest.mark.parametrize("language", sorted(UNTAGGED))
def test_untagged_blocks_are_detected(language):
    block = extract_code(f"Here is my solution:\n```\n{UNTAGGED[language]}```\n")
    assert block is not None and block.language == language and block.language_source == "detected"
    assert block.code == UNTAGGED[language]


@pytest.mark.parametrize(
    "tag, language",
    [
        ("python", "python"),
        ("py", "python"),
        ("Python3", "python"),
        ("c++", "cpp"),
        ("cpp", "cpp"),
        ("c", "c"),
        ("java", "java"),
        ("js", "javascript"),
        ("javascript", "javascript"),
        ("sh", "bash"),
        ("bash", "bash"),
        ("go", "go"),
        ("golang", "go"),
    ],
)
def test_the_fence_tag_names_the_language(tag, language):
    block = extract_code(f"```{tag}\nx = 1\n```")
    assert block.language == language and block.language_source == "fence"
    assert SANDBOX_LANGUAGE[language] in {"python", "cpp", "java", "nodejs", "bash", "go"}


def test_the_tag_wins_over_detection():
    assert extract_code(f"```c\n{UNTAGGED['cpp']}```").language == "c"


def test_the_last_block_of_the_answer_is_taken_and_the_reasoning_ignored():
    response = (
        "<think>draft:\n```python\nprint('draft')\n```\n</think>\nFirst attempt:\n```python\nprint(1)\n```\n"
        "Final:\n```python\nprint(2)\n```\n"
    )
    assert extract_code(response).code == "print(2)\n"


def test_code_only_in_the_reasoning_is_no_answer():
    assert extract_code("<think>\n```python\nprint(1)\n```\n</think>\nThe answer is 1.") is None


@pytest.mark.parametrize("response", ["no code at all", "```python\nprint(1)\n", "`print(1)`"])
def test_no_complete_fenced_block_is_none(response):
    assert extract_code(response) is None


def test_tilde_fences_and_longer_fences_with_nested_backticks():
    assert extract_code("~~~python\nprint(1)\n~~~").code == "print(1)\n"
    assert extract_code("````python\ns = '```'\n````").code == "s = '```'\n"


def test_an_unknown_tag_falls_back_to_detection_and_nonsense_to_none():
    assert extract_code(f"```text\n{UNTAGGED['go']}```").language == "go"
    block = extract_code("```\nhello world\n```")
    assert block.language is None and block.language_source == "none"
    assert detect_language("") is None
