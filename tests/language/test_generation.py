"""Attribute generation end to end: a fake OpenAI-compatible server on loopback (good, malformed
and slow answers), a tiny random-init transformers causal LM, the cache (keys, bad output never
cached, atomic writes surviving a crash mid-write) and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vidssl.cli import main
from vidssl.language import cache as cache_mod
from vidssl.language.cache import PromptCache, atomic_write_bytes
from vidssl.language.generate import generate_attributes
from vidssl.language.llm import LLMError, OpenAIBackend, TransformersBackend
from vidssl.language.prompts import TEMPLATE_VERSION

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-test-never-leak-0123456789"
GOOD = {"Juggle": ["three balls", "hands tossing upward", "a park"],
        "Swim": ["a pool", "arms stroking", "goggles"]}


class FakeLLM(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``. The class in the prompt picks the behaviour:
    good JSON (GOOD), ``Broken`` -> prose, ``Slow`` -> sleeps past the client timeout,
    ``Flaky`` -> prose on the first request, good JSON after, ``Garbled`` -> not HTTP at all,
    ``Cut`` -> a body shorter than its Content-Length, ``Moved`` -> a redirect to ``GET /landing``
    (whose headers are recorded in ``redirected``)."""

    requests: list[dict] = []
    auth: list[str] = []
    redirected: list[dict] = []
    flaky_calls = 0

    def do_GET(self):
        FakeLLM.redirected.append(dict(self.headers))
        self.send_error(404, "Not Found")

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        if self.path != "/v1/chat/completions":
            self.send_error(404, "Not Found")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLLM.requests.append(body)
        FakeLLM.auth.append(self.headers.get("Authorization", ""))
        prompt = body["messages"][-1]["content"]
        if '"garbled"' in prompt:
            self.wfile.write(b"NOT-HTTP garbage\r\n\r\n")
            self.close_connection = True
            return
        if '"cut"' in prompt:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.close_connection = True
            return
        if '"moved"' in prompt:
            self.send_response(302)
            self.send_header("Location", "/landing")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if '"slow"' in prompt:
            time.sleep(1.0)
            content = json.dumps(["too late"])
        elif '"broken"' in prompt:
            content = "Sorry, I can only answer in prose."
        elif '"flaky"' in prompt:
            FakeLLM.flaky_calls += 1
            content = "not json" if FakeLLM.flaky_calls == 1 else json.dumps(["a coin", "a flip", "a table"])
        else:
            name = next(k for k in GOOD if f'"{k.lower()}"' in prompt)
            content = "```json\n" + json.dumps(GOOD[name]) + "\n```"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass


@pytest.fixture
def fake_server(monkeypatch):
    FakeLLM.requests, FakeLLM.auth, FakeLLM.redirected, FakeLLM.flaky_calls = [], [], [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("VIDSSL_LLM_BASE_URL", url)
    monkeypatch.setenv("VIDSSL_LLM_API_KEY", SECRET)
    yield url
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_openai_backend_good_malformed_and_slow(fake_server, tmp_path, caplog):
    backend = OpenAIBackend("fake-model", timeout=0.3)
    cache = PromptCache(tmp_path / "cache")
    res = generate_attributes(["Juggle", "Broken", "Slow", "Flaky", "Swim"], backend, vocabulary="ucf101",
                              cache=cache, retries=1)
    assert res.doc["classes"] == {"Juggle": GOOD["Juggle"], "Swim": GOOD["Swim"],
                                  "Flaky": ["a coin", "a flip", "a table"]}
    assert set(res.failures) == {"Broken", "Slow"}
    assert "JSON" in res.failures["Broken"] and "no answer within" in res.failures["Slow"]
    assert res.doc["template_version"] == TEMPLATE_VERSION and res.doc["source"] == "openai:fake-model"
    assert res.generated == 3 and res.cached == 0
    assert res.attempts == 1 + 2 + 2 + 2 + 1          # retried once each: Broken, Slow, Flaky
    # greedy, model and messages as the protocol says; the key only in the header
    assert all(r["temperature"] == 0 and r["model"] == "fake-model" for r in FakeLLM.requests)
    assert set(FakeLLM.auth) == {f"Bearer {SECRET}"}
    # bad answers are not cached; a second run asks only for those
    stored = list((tmp_path / "cache").rglob("*.json"))
    assert len(stored) == 3
    for f in stored:
        assert SECRET not in f.read_text()
    n = len(FakeLLM.requests)
    again = generate_attributes(["Juggle", "Broken", "Flaky", "Swim"], backend, vocabulary="ucf101",
                                cache=cache, retries=0)
    assert again.cached == 3 and again.generated == 0 and set(again.failures) == {"Broken"}
    assert len(FakeLLM.requests) == n + 1
    assert SECRET not in caplog.text


def test_broken_http_answers_are_retried_and_reported_and_redirects_do_not_carry_the_key(
        fake_server, tmp_path):
    backend = OpenAIBackend("fake-model", timeout=5)
    res = generate_attributes(["Garbled", "Cut", "Moved", "Juggle"], backend, vocabulary="ucf101",
                              cache=PromptCache(tmp_path), retries=1)
    assert res.doc["classes"] == {"Juggle": GOOD["Juggle"]}
    assert "broken HTTP response" in res.failures["Garbled"] and "broken HTTP response" in res.failures["Cut"]
    assert "HTTP 404" in res.failures["Moved"]
    assert len(FakeLLM.redirected) == 2                       # the redirect was followed (twice: retry)
    assert all("Authorization" not in h for h in FakeLLM.redirected)
    assert all(SECRET not in reason for reason in res.failures.values())


def test_base_url_credentials_stay_out_of_messages(monkeypatch):
    from vidssl.errors import ConfigError

    backend = OpenAIBackend("m", base_url="http://user:hunter2@127.0.0.1:9/v1", timeout=1)
    with pytest.raises(LLMError) as err:  # port 9 (discard) is closed here: connection refused
        backend.complete([{"role": "user", "content": "hi"}])
    assert "hunter2" not in str(err.value) and "127.0.0.1:9/v1" in str(err.value)
    with pytest.raises(ConfigError, match="whitespace"):
        OpenAIBackend("m", base_url="http://local host/v1")


def test_cache_key_covers_backend_model_template_decoding_class_and_vocabulary():
    base = dict(backend="openai", model_id="m", template_version="v1", decoding={"temperature": 0}, class_name="A",
                vocabulary="ucf101")
    k = PromptCache.key(**base)
    for change in (dict(backend="transformers"), dict(model_id="m2"), dict(template_version="v2"),
                   dict(decoding={"temperature": 0, "max_tokens": 5}), dict(class_name="B"),
                   dict(vocabulary="hmdb51")):
        assert PromptCache.key(**{**base, **change}) != k
    assert PromptCache.key(**base) == k


def test_cli_generate_writes_the_file_and_reports_failures(fake_server, tmp_path, capsys):
    out = tmp_path / "attrs.json"
    classes = tmp_path / "classes.txt"
    classes.write_text("Juggle\nSwim\nBroken\n")
    rc = main(["concepts", "generate", "--vocabulary", str(classes), "--backend", "openai", "--model", "fake",
               "--out", str(out), "--cache", str(tmp_path / "c"), "--retries", "0", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1 and "Broken" in text and "2/3 classes" in text and SECRET not in text
    doc = json.loads(out.read_text())
    assert doc["classes"] == GOOD and doc["source"] == "openai:fake" and SECRET not in out.read_text()
    from vidssl.language.attributes import load_attributes

    assert load_attributes(out)["classes"] == GOOD


def test_openai_backend_needs_a_base_url_and_reports_http_errors(monkeypatch, fake_server):
    monkeypatch.delenv("VIDSSL_LLM_BASE_URL")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    from vidssl.errors import ConfigError

    with pytest.raises(ConfigError, match="VIDSSL_LLM_BASE_URL"):
        OpenAIBackend("m")
    with pytest.raises(ConfigError, match="http"):
        OpenAIBackend("m", base_url="ftp://example")
    with pytest.raises(LLMError, match="HTTP 404") as err:
        OpenAIBackend("m", base_url=fake_server + "/missing").complete([{"role": "user", "content": "hi"}])
    assert SECRET not in str(err.value)


def _tiny_lm():
    """A random-init 1-layer GPT-2 with a byte-level tokenizer and a chat template, built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    import torch

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    vocab["<|end|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|end|>")
    fast.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}<|end|>{% endfor %}"
                          "{% if add_generation_prompt %}<assistant>{% endif %}")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=1024, n_embd=16, n_layer=1, n_head=2))
    return model, fast


def test_transformers_backend_with_a_tiny_random_lm(tmp_path):
    model, tokenizer = _tiny_lm()
    backend = TransformersBackend("tiny-random-gpt2", model=model, tokenizer=tokenizer, max_new_tokens=12)
    assert backend.decoding == {"do_sample": False, "max_new_tokens": 12}
    from vidssl.language.prompts import build_messages

    msgs = build_messages("Juggle", "ucf101")
    a, b = backend.complete(msgs), backend.complete(msgs)
    assert a == b and isinstance(a, str)          # greedy: deterministic
    # a random model does not answer in JSON: retried, reported, not cached
    cache = PromptCache(tmp_path / "cache")
    res = generate_attributes(["Juggle"], backend, vocabulary="ucf101", cache=cache, retries=1)
    assert res.attempts == 2 and set(res.failures) == {"Juggle"} and res.doc["classes"] == {}
    assert not list((tmp_path / "cache").rglob("*.json"))
    assert res.doc["source"] == "transformers:tiny-random-gpt2"


def test_transformers_backend_uses_the_chat_template(monkeypatch):
    model, tokenizer = _tiny_lm()
    backend = TransformersBackend("tiny", model=model, tokenizer=tokenizer, max_new_tokens=4)
    seen = {}
    original = model.generate

    def spy(**kw):
        seen["text"] = tokenizer.decode(kw["input_ids"][0])
        seen["do_sample"] = kw["do_sample"]
        return original(**kw)

    monkeypatch.setattr(model, "generate", spy)
    backend.complete([{"role": "user", "content": "hello"}])
    assert seen["text"] == "<user>hello<|end|><assistant>" and seen["do_sample"] is False


def test_cache_survives_a_crash_mid_write(tmp_path, monkeypatch):
    cache = PromptCache(tmp_path)
    key = PromptCache.key("openai", "m", "v1", {}, "Juggle")
    cache.put(key, ["old attribute"])

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(cache_mod.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        cache.put(key, ["new attribute"])
    monkeypatch.undo()
    assert cache.get(key) == ["old attribute"]
    assert [p.name for p in cache.path(key).parent.iterdir()] == [cache.path(key).name]  # no temp left


def test_cache_survives_a_killed_writer(tmp_path):
    """A process killed (SIGKILL) while writing a large entry leaves the old entry readable."""
    target = tmp_path / "entry.json"
    atomic_write_bytes(target, json.dumps({"attributes": ["old"]}).encode())
    code = ("import sys, os; sys.path.insert(0, %r)\n"
            "from vidssl.language import cache\n"
            "real = os.fsync\n"
            "def slow(fd):\n    print('writing', flush=True); import time; time.sleep(30)\n"
            "os.fsync = slow\n"
            "cache.atomic_write_bytes(%r, b'x' * 10_000_000)\n") % (str(REPO), str(target))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(10)
    assert json.loads(target.read_text()) == {"attributes": ["old"]}
    cache = PromptCache(tmp_path)  # the folder stays usable
    cache.put("0" * 64, ["new"], {})
    assert cache.get("0" * 64) == ["new"]


def test_unreadable_cache_entry_is_a_miss(tmp_path):
    cache = PromptCache(tmp_path)
    key = PromptCache.key("openai", "m", "v1", {}, "X")
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text("{truncated")
    assert cache.get(key) is None


def test_cli_generate_with_a_local_transformers_folder(tmp_path, capsys):
    """`--backend transformers --model FOLDER`: AutoTokenizer / AutoModelForCausalLM load a saved
    tiny model (chat template included); its random answers are reported per class."""
    model, tokenizer = _tiny_lm()
    folder = tmp_path / "tiny-lm"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    classes = tmp_path / "classes.txt"
    classes.write_text("Juggle\nSwim\n")
    out = tmp_path / "attrs.json"
    rc = main(["concepts", "generate", "--vocabulary", str(classes), "--backend", "transformers", "--model",
               str(folder), "--max-tokens", "8", "--retries", "0", "--out", str(out), "--cache",
               str(tmp_path / "c"), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1 and "0/2 classes" in text and "Juggle" in text and "Swim" in text
    doc = json.loads(out.read_text())
    assert doc["classes"] == {} and doc["source"] == f"transformers:{folder}"
    assert main(["concepts", "generate", "--vocabulary", str(classes), "--backend", "transformers",
                 "--model", str(tmp_path / "missing"), "--quiet"]) == 2
