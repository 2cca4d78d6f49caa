"""The embedded sandbox against clients we did not write: the official ``sandbox_fusion`` client
(its pydantic models parse every response, and its ``summary_run_code_result`` classifies it)
and verl's own ``sandbox_fusion.check_correctness`` (which speaks the raw HTTP protocol)."""

from __future__ import annotations

import base64
import concurrent.futures
import json

import pytest
import requests
import sandbox_fusion
from sandbox_fusion import RunCodeRequest, SummaryMapping, summary_run_code_result

from tests.rewards.sandbox_helpers import sandbox_servers, slot_uids, surviving_processes, verl_sandbox_fusion_utils

MAPPING = SummaryMapping(
    Success="ok",
    Failed="failed",
    CompileFailed="compile_failed",
    RunFailed="run_failed",
    RunTimeout="run_timeout",
    CompileTimeout="compile_timeout",
)

PROGRAMS = {
    # (language, code, stdin) -> expected summary, expected stdout
    "python_ok": ("python", "a, b = map(int, input().split())\nprint(a + b)", "2 40", "ok", "42\n"),
    "cpp_ok": (
        "cpp",
        "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}",
        "2 40",
        "ok",
        "42\n",
    ),
    "bash_ok": ("bash", "read a b\necho $((a + b))", "2 40", "ok", "42\n"),
    "nodejs_ok": (
        "nodejs",
        "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(' ').map(Number);\nconsole.log(a + b);",
        "2 40",
        "ok",
        "42\n",
    ),
    "java_ok": (
        "java",
        "import java.util.*;\npublic class Solution {\n  public static void main(String[] x) {\n"
        "    Scanner s = new Scanner(System.in);\n    System.out.println(s.nextInt() + s.nextInt());\n  }\n}",
        "2 40",
        "ok",
        "42\n",
    ),
    # Sandbox-Fusion runs `java -ea`: a harness built on `assert` must fail a wrong program (issue 15, item 8)
    "java_assert_fails": (
        "java",
        'public class Main {\n  public static void main(String[] a) {\n    assert 1 == 2 : "boom";\n  }\n}',
        None,
        "run_failed",
        "",
    ),
    "java_assertions_on": (
        "java",
        "public class Main {\n  public static void main(String[] a) {\n    boolean on = false;\n    assert on = true;\n"
        "    System.out.println(on);\n  }\n}",
        None,
        "ok",
        "true\n",
    ),
    "python_runtime_error": ("python", "raise SystemExit(3)", None, "run_failed", ""),
    "python_exception": ("python", "1 / 0", None, "run_failed", ""),
    "cpp_compile_error": ("cpp", "int main() { return undefined_name; }", None, "compile_failed", None),
    "cpp_runtime_error": ("cpp", "#include <cstdlib>\nint main(){ std::abort(); }", None, "run_failed", ""),
    "python_timeout": ("python", "import time\ntime.sleep(30)", None, "run_timeout", ""),
    "bash_timeout": ("bash", "sleep 30", None, "run_timeout", ""),
}


@pytest.fixture(scope="module")
def servers():
    with sandbox_servers(2, workers=2) as running:
        yield running


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_official_client_classifies_each_outcome(servers, name):
    language, code, stdin, expected_summary, expected_stdout = PROGRAMS[name]
    endpoint = servers[hash(name) % 2].url
    response = sandbox_fusion.run_code(
        RunCodeRequest(code=code, language=language, stdin=stdin, run_timeout=1.5), endpoint=endpoint, max_attempts=1
    )
    assert summary_run_code_result(response, MAPPING) == expected_summary, response
    if expected_stdout is not None:
        assert response.run_result.stdout == expected_stdout
    if expected_summary == "run_timeout":
        assert response.run_result.execution_time >= 1.5
    assert not surviving_processes(slot_uids(servers))


def test_the_response_matches_sandbox_fusions_schema_field_for_field(servers):
    """Sandbox-Fusion's server (sandbox/server/sandbox_api.py) answers exactly these keys."""
    body = requests.post(f"{servers[0].url}/run_code", json={"code": "print(1)", "language": "python"}).json()
    assert set(body) == {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}
    assert set(body["run_result"]) >= {"status", "execution_time", "return_code", "stdout", "stderr"}
    assert body["status"] == "Success" and body["run_result"]["status"] == "Finished"
    assert requests.get(f"{servers[0].url}/v1/ping").json() == "pong"


@pytest.mark.parametrize(
    "code, language, inputs, outputs, expected",
    [
        ("print(int(input()) * 2)", "python", ["3", "5"], ["6", "10"], [True, True]),
        ("print(int(input()) * 3)", "python", ["3", "5"], ["6", "10"], [False, False]),
        ("import sys; sys.exit(1)", "python", ["3"], ["6"], [-2]),
        ("while True: pass", "python", ["3"], ["6"], [-3]),
        ("int main( {", "cpp", ["3"], ["6"], [-4]),
    ],
    ids=["correct", "wrong", "runtime_error", "timeout", "compile_error"],
)
def test_verls_sandbox_fusion_reward_reads_our_responses(servers, code, language, inputs, outputs, expected):
    """verl's check_correctness codes: True/False, -2 runtime error, -3 timeout, -4 compile error."""
    results, _ = verl_sandbox_fusion_utils().check_correctness(
        f"{servers[1].url}/run_code", {"inputs": inputs, "outputs": outputs}, code, timeout=2, language=language
    )
    assert results == expected


def test_stdin_files_and_fetch_files_round_trip(servers):
    request = RunCodeRequest(
        code="import sys\ndata = open('data/in.txt').read()\n"
        "open('out.txt', 'w').write(data.upper() + sys.stdin.read())",
        language="python",
        stdin="!",
        files={"data/in.txt": base64.b64encode(b"abc").decode()},
        fetch_files=["out.txt", "missing.txt"],
    )
    response = sandbox_fusion.run_code(request, endpoint=servers[0].url, max_attempts=1)
    assert base64.b64decode(response.files["out.txt"]) == b"ABC!"
    assert "missing.txt" not in response.files


def test_fetch_files_cannot_leak_through_a_planted_symlink(servers):
    request = RunCodeRequest(
        code="import os\nos.symlink('/etc/hostname', 'leak')\n"
        "os.mkdir('d')\nos.symlink('/etc', 'd/etc')\nos.mkfifo('fifo')",
        language="python",
        fetch_files=["leak", "d/etc/hostname", "fifo"],
    )
    response = sandbox_fusion.run_code(request, endpoint=servers[0].url, max_attempts=1)
    assert response.status == "Success" and response.files == {}
    # never silently: the message says why each file is missing
    assert "'leak' not fetched: it is a symlink" in response.message
    assert "'d/etc/hostname' not fetched" in response.message and "'fifo' not fetched" in response.message


@pytest.mark.parametrize(
    "field, body, words",
    [
        ("files", {"files": {"../../escape.txt": base64.b64encode(b"x").decode()}}, "escapes the work directory"),
        ("files", {"files": {"/mnt/b": base64.b64encode(b"x").decode()}}, "absolute path"),
        ("fetch_files", {"fetch_files": ["/mnt/b"]}, "absolute path"),  # Sandbox-Fusion's own tests fetch /mnt/b
        ("fetch_files", {"fetch_files": ["../../etc/hostname"]}, "escapes the work directory"),
    ],
)
def test_a_path_outside_the_work_directory_fails_the_request_clearly(servers, field, body, words):
    """Never silently dropped (issue 15, item 9): a 400 naming the field and why."""
    answer = requests.post(f"{servers[0].url}/run_code", json={"code": "print(1)", "language": "python", **body})
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"] and words in answer.json()["detail"]


def test_bad_requests_are_answered_with_the_field_named(servers):
    missing = requests.post(f"{servers[0].url}/run_code", json={"language": "python"})
    assert missing.status_code == 400 and "'code'" in missing.json()["detail"]
    bad_timeout = requests.post(
        f"{servers[0].url}/run_code", json={"code": "1", "language": "python", "run_timeout": -1}
    )
    assert bad_timeout.status_code == 400 and "run_timeout" in bad_timeout.json()["detail"]
    not_json = requests.post(f"{servers[0].url}/run_code", data=b"{nope")
    assert not_json.status_code == 400


def test_an_unsupported_language_is_a_sandbox_error_the_client_raises(servers):
    with pytest.raises(Exception, match="not supported by the embedded sandbox"):
        sandbox_fusion.run_code(
            RunCodeRequest(code="fn main(){}", language="rust"), endpoint=servers[0].url, max_attempts=1
        )


def test_the_program_sees_no_secret_of_the_servers_environment(servers):
    from tests.rewards.sandbox_helpers import SECRET_NAME, SECRET_VALUE

    response = sandbox_fusion.run_code(
        RunCodeRequest(code="import os, json\nprint(json.dumps(dict(os.environ)))", language="python"),
        endpoint=servers[0].url,
        max_attempts=1,
    )
    env = json.loads(response.run_result.stdout)
    assert SECRET_NAME not in env and SECRET_VALUE not in response.run_result.stdout
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD", "LC_CTYPE"}


@pytest.mark.slow
def test_64_concurrent_requests_are_all_answered(servers):
    def one(i: int):
        endpoint = servers[i % 2].url
        return sandbox_fusion.run_code(
            RunCodeRequest(code=f"print({i} * {i})", language="python"),
            endpoint=endpoint,
            max_attempts=1,
            client_timeout=120,
        )

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(one, range(64)))
    assert [r.run_result.stdout for r in responses] == [f"{i * i}\n" for i in range(64)]
    assert all(r.status == "Success" for r in responses)
    assert not surviving_processes(slot_uids(servers))
