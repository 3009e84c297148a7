"""Regenerate the Go-recorded expectations in this directory (needs Go 1.19.x).

    python tests/data/go119/generate.py

Inputs are hand-written cases plus seeded random ones; every expected value is what
``harness.go`` (Go's own ``encoding/json`` and ``time``) printed for them. Nothing here
imports tarexport.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIFF = "sha256:" + "c" * 64
ROOTFS = b'"rootfs":{"type":"layers","diff_ids":["' + DIFF.encode() + b'"]}'


def run_go(mode: str, inputs: list[bytes]) -> list[dict]:
    lines = "".join(base64.b64encode(data).decode() + "\n" for data in inputs)
    done = subprocess.run(
        ["go", "run", "harness.go", mode],
        cwd=HERE, input=lines.encode(), capture_output=True, check=True,
    )
    results = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(results) == len(inputs)
    return results


def write(name: str, cases: list[tuple[str, bytes]], mode: str) -> None:
    results = run_go(mode, [data for _, data in cases])
    with open(HERE / name, "w", encoding="utf-8") as out:
        for (case, data), result in zip(cases, results):
            record = {"name": case, "input": base64.b64encode(data).decode(), **result}
            out.write(json.dumps(record, ensure_ascii=True, sort_keys=True) + "\n")


# -- syntax ---------------------------------------------------------------------------------

SYNTAX_NAMED = {
    "empty": b"", "space-only": b"  ", "open-object": b"{", "missing-colon": b'{"a" 1}',
    "trailing-comma-array": b"[1,]", "trailing-comma-object": b'{"a":1,}', "leading-zero": b"01",
    "dot-at-end": b"1.", "dot-no-digit": b"1.x", "minus-alone": b"-", "minus-letter": b"-x",
    "exponent-at-end": b"1e", "exponent-sign-at-end": b"1e+", "true-cut": b"tru",
    "true-typo": b"trux", "false-typo": b"fals3", "null-cut": b"nu", "bad-escape": b'"\\x"',
    "escape-at-end": b'"\\', "bad-hex": b'"\\u12g4"', "hex-cut": b'"\\u12',
    "control-in-string": b'"a\x01"', "newline-in-string": b'"a\nb"', "unterminated": b'"abc',
    "after-top-level": b"[1] x", "two-values": b"1 2", "comma-first": b"{,}",
    "key-not-string": b"{1:2}", "nul-byte": b"\x00", "latin1-byte": b"\xe9", "c1-byte": b"\x80",
    "nbsp-byte": b"\xa0", "soft-hyphen-byte": b"\xad", "quote-char": b"'", "backslash": b"\\",
    "del": b"\x7f", "bell": b"\x07", "deep-10000": b"[" * 10000 + b"]" * 10000,
    "deep-10001": b"[" * 10001, "object-in-array-missing-close": b'[{"a":1]',
    "nested-ok": b'{"a":[1,2.5,-0,1e3,"x",true,false,null,{}],"b":{"c":[]}}',
    "strings": b'"\\ud800\\u0041 \\udc00\\udc00\\ud800 \\ud83d\\ude00 \xe2\x82A \xed\xa0\x80 '
    b'\xf4\x90\x80\x80 \xc0\xaf \xff\\/\\b\\f"',
    "duplicate-keys": b'{"a":1,"a":2,"A":3}', "whitespace": b' \t\r\n{ "a" : [ 1 , 2 ] }\n ',
}
ALPHABET = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"u", b"0", b"1", b"-", b".",
            b"e", b"+", b" ", b"\n", b"t", b"r", b"n", b"true", b"null", b'"a"', b"\xe9",
            b"\x01", b"\\ud800", b"\\udc00", b"1.5", b"E", b"f", b"\\n", b"x", b"\xff",
            b"\xc3\xa9", b'"k":']


def syntax_cases(rnd: random.Random) -> list[tuple[str, bytes]]:
    cases = list(SYNTAX_NAMED.items())
    for i in range(400):
        data = b"".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 10)))
        cases.append((f"random-{i}", data))
    return cases


# -- time -----------------------------------------------------------------------------------

TIME_NAMED = [
    "2019-06-07T08:09:10.987654321+02:00", "2026-11-28T22:59:42.482427985Z",
    "2019-06-07T08:09:10Z", "2019-06-07T08:09:10+00:00", "2019-06-07T08:09:10-00:00",
    "2019-06-07T08:09:10.900000000Z", "2019-06-07T08:09:10.120Z", "2019-06-07T08:09:10.000Z",
    "2019-06-07T08:09:10.1234567891234Z", "2019-06-07T08:09:10,5Z", "2019-06-07T8:09:10Z",
    "2019-06-07T08:09:.5Z", "2019-06-07T08:09:10+99:99", "2019-06-07T08:09:10+-1:30",
    "2019-06-07T08:09:10+05:45", "2019-06-07T08:09:10-09:30", "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z", "1970-01-01T01:00:00+01:00", "0001-01-01T00:00:00Z",
    "0000-01-01T00:00:00+01:00", "0000-02-29T00:00:00Z", "9999-12-31T23:59:59.999999999-05:00",
    "2250-01-01T00:00:00Z", "2300-06-07T00:00:00.5Z", "2242-03-16T12:56:32Z",
    "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z",
    "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2019-02-29T00:00:00Z",
    "2019-06-07 08:09:10Z", "2019-06-07T08:09:10", "19-06-07T08:09:10Z",
    "2019-06-07T24:00:00Z", "2019-06-07T08:60:00Z", "2019-06-07T08:09:60Z",
    "2019-13-07T08:09:10Z", "2019-00-07T08:09:10Z", "2019-06-00T08:09:10Z",
    "2019-06-31T08:09:10Z", "2019-06-07T08:09:10z", "2019-06-07t08:09:10Z",
    "2019-06-07T08:09:10.Z", "2019-06-07T08:09:10+0200", "2019-06-07T08:09:10+02:00x",
    "2019-6-07T08:09:10Z", "2019-06-7T08:09:10Z", "2019-06-07T08:9:10Z", "",
]


def time_cases(rnd: random.Random) -> list[tuple[str, bytes]]:
    cases = [(f"named-{i}", text.encode()) for i, text in enumerate(TIME_NAMED)]

    def digits(n: int) -> str:
        if rnd.random() < 0.9:
            return "".join(rnd.choice("0123456789") for _ in range(n))
        return "".join(rnd.choice("0123456789+-:.,TZ") for _ in range(rnd.choice([n - 1, n + 1])))

    for i in range(700):
        year = str(rnd.randint(0, 9999)).zfill(4) if rnd.random() < 0.8 else digits(4)
        month = str(rnd.randint(1, 12)).zfill(2) if rnd.random() < 0.9 else digits(2)
        day = str(rnd.randint(1, 31)).zfill(2) if rnd.random() < 0.9 else digits(2)
        hour = rnd.choice([str(rnd.randint(0, 23)).zfill(2), str(rnd.randint(0, 9)), digits(2)])
        minute = str(rnd.randint(0, 59)).zfill(2) if rnd.random() < 0.9 else digits(2)
        second = str(rnd.randint(0, 59)).zfill(2) if rnd.random() < 0.9 else digits(2)
        frac = rnd.choice(["", "", "." + digits(rnd.randint(1, 12)), ",5", "." + "0" * 4])
        east = f"+{rnd.randint(0, 30):02d}:{rnd.randint(0, 99):02d}"
        west = f"-{rnd.randint(0, 30):02d}:{rnd.randint(0, 59):02d}"
        odd = rnd.choice("+-") + digits(2) + ":" + digits(2)
        zone = rnd.choice(["Z", "Z", "+00:00", "-00:00", east, west, odd])
        cases.append((f"random-{i}", f"{year}-{month}-{day}T{hour}:{minute}:{second}{frac}{zone}"
                      .encode()))
    return cases


# -- image configs ----------------------------------------------------------------------------

def cfg(body: bytes) -> bytes:
    return b"{" + ROOTFS + b"," + body + b"}"


IMAGE_NAMED = {
    "minimal": b"{" + ROOTFS + b"}",
    "no-rootfs": b'{"os":"linux"}',
    "rootfs-null": b'{"rootfs":null}',
    "rootfs-empty": b'{"rootfs":{}}',
    "top-level-null": b"null",
    "top-level-array": b"[]",
    "unknown-keys": cfg(b'"zzz":{"deep":[1,{"x":null}]},"config":{"Bogus":1.5,"Env":["A=1"]}'),
    "case-insensitive": cfg(b'"ARCHITECTURE":"amd64","Os":"linux","size":7,'
                            b'"config":{"env":["A=1"],"CMD":"x","labels":{"a":"b"}}'),
    "kelvin-and-long-s": cfg(b'"config":{"Healthchec\xe2\x84\xaa":{"Te\xc5\xbft":["CMD"]},'
                             b'"Volume\xc5\xbf":{"/v":{}},"\xe2\x84\xaaey":1}'),
    "escaped-keys": cfg(b'"\\u0063reated":"2019-06-07T08:09:10Z","c\\u006fnfig":{"\\u0045nv":[]}'),
    "duplicate-last-wins": cfg(b'"os":"a","os":"b","OS":"c","author":"x","Author":"y"'),
    "duplicate-config-merges": cfg(b'"config":{"Env":["A=1"],"User":"u"},"config":{"Cmd":["c"]}'),
    "duplicate-labels-merge": cfg(b'"config":{"Labels":{"a":"1","b":"2"},'
                                  b'"Labels":{"b":"3","c":"4"}}'),
    "duplicate-labels-null-resets": cfg(b'"config":{"Labels":{"a":"1"},"Labels":null,'
                                        b'"Labels":{"c":"4"}}'),
    "duplicate-env-null-elements-keep": cfg(b'"config":{"Env":["a","b","c"],"Env":["x",null]}'),
    "duplicate-env-stale-capacity": cfg(b'"config":{"Env":["a","b","c"],"Env":["x"],'
                                        b'"Env":["y",null,null,null]}'),
    "duplicate-env-growth": cfg(b'"config":{"Env":["a","b","c","d","e"],"Env":["1","2","3","4",'
                                b'"5","6",null]}'),
    "duplicate-env-empty-drops-backing": cfg(b'"config":{"Env":["a","b"],"Env":[],'
                                             b'"Env":[null,null]}'),
    "duplicate-history-merges": cfg(b'"history":[{"created_by":"a","comment":"c"}],'
                                    b'"history":[{"author":"b"},{"empty_layer":true}]'),
    "duplicate-healthcheck-merges": cfg(b'"config":{"Healthcheck":{"Test":["CMD"],"Retries":3},'
                                        b'"Healthcheck":{"Interval":5}}'),
    "duplicate-stoptimeout-null": cfg(b'"config":{"StopTimeout":5,"StopTimeout":null}'),
    "duplicate-created-null-keeps": cfg(b'"created":"2019-06-07T08:09:10Z","created":null'),
    "duplicate-strslice-replaces": cfg(b'"config":{"Cmd":["a","b"],"Cmd":["c"]}'),
    "parent-ignored-id-kept": cfg(b'"parent":"sha256:' + b"d" * 64 + b'","id":"abc","Parent":"x"'),
    "parent-wrong-type": cfg(b'"parent":5'),
    "strslice-string": cfg(b'"config":{"Cmd":"echo hi","Entrypoint":"/bin/sh","Shell":"sh"}'),
    "strslice-null-element": cfg(b'"config":{"Cmd":["a",null],"Entrypoint":[null]}'),
    "strslice-number": cfg(b'"config":{"Cmd":5}'),
    "strslice-number-element": cfg(b'"config":{"Cmd":["a",1]}'),
    "null-vs-empty": cfg(b'"config":{"Env":[],"Cmd":[],"Entrypoint":[],"OnBuild":[],'
                         b'"Volumes":{},"Labels":{},"ExposedPorts":{},"Shell":[]},'
                         b'"container_config":{"Env":null,"Cmd":null,"Volumes":null,'
                         b'"Labels":null,"ExposedPorts":null,"Shell":null}'),
    "config-null": cfg(b'"config":null'),
    "config-empty": cfg(b'"config":{}'),
    "container-config-null": cfg(b'"container_config":null'),
    "healthcheck-test-empty": cfg(b'"config":{"Healthcheck":{"Test":[]}}'),
    "healthcheck-full": cfg(b'"config":{"Healthcheck":{"Test":["CMD","x"],"Interval":5000000000,'
                            b'"Timeout":3000000000,"StartPeriod":1,"StartInterval":2,"Retries":2}}'),
    "healthcheck-null": cfg(b'"config":{"Healthcheck":null}'),
    "stoptimeout-zero": cfg(b'"config":{"StopTimeout":0}'),
    "bools-omitempty": cfg(b'"config":{"ArgsEscaped":true,"NetworkDisabled":true,"Tty":true},'
                           b'"container_config":{"ArgsEscaped":false,"NetworkDisabled":false}'),
    "strings-omitempty": cfg(b'"config":{"MacAddress":"02:42:ac:11:00:02","StopSignal":"SIGTERM"},'
                             b'"comment":"","container":"","docker_version":"","author":"",'
                             b'"architecture":"","variant":"","os":""'),
    "exposed-ports-set": cfg(b'"config":{"ExposedPorts":{"80/tcp":{},"53/udp":null,'
                             b'"443/tcp":{"x":1}},"Volumes":{"/b":{},"/a":{}}}'),
    "labels-sorted-bytewise": cfg(b'"config":{"Labels":{"b":"1","B":"2","a":"3","\xc3\xa9":"4",'
                                  b'"\xf0\x9f\x98\x80":"5","\xef\xbf\xbf":"6","":"7"}}'),
    "html-and-separators": cfg(b'"author":"<a> & \xe2\x80\xa8 \xe2\x80\xa9","config":{"Labels":'
                               b'{"<k>":"&amp;"}}'),
    "control-characters": cfg(b'"comment":"\\u0000\\u0001\\b\\f\\t\\n\\r\\u001f\x7f /\\/"'),
    "invalid-utf8": cfg(b'"comment":"a\xffb\xe2\x82c\xed\xa0\x80d\xc0\xafe\xf4\x90\x80\x80f"'),
    "lone-surrogates": cfg(b'"comment":"\\ud800x\\udc00\\ud800\\u0041\\ud83d\\ude00\\ud83d"'),
    "keys-invalid-utf8": cfg(b'"config":{"Labels":{"\xff":"a","\\ud800":"b"}}'),
    "created-offset": cfg(b'"created":"2019-06-07T08:09:10.987654321+02:00"'),
    "created-plus-zero": cfg(b'"created":"2019-06-07T08:09:10+00:00"'),
    "created-missing": b"{" + ROOTFS + b"}",
    "created-null": cfg(b'"created":null'),
    "created-pre-1970": cfg(b'"created":"1969-07-20T20:17:40Z"'),
    "created-2250": cfg(b'"created":"2250-01-01T00:00:00Z"'),
    "created-2300": cfg(b'"created":"2300-06-07T00:00:00.5Z"'),
    "created-trailing-zeros": cfg(b'"created":"2019-06-07T08:09:10.900000000Z"'),
    "created-escaped": cfg(b'"created":"2019\\u002d06-07T08:09:10Z"'),
    "created-number": cfg(b'"created":1560000000'),
    "created-bad-date": cfg(b'"created":"2019-02-29T00:00:00Z"'),
    "history-created-bad": cfg(b'"history":[{"created":"yesterday"}]'),
    "size-float": cfg(b'"Size":1.5'),
    "size-exponent": cfg(b'"Size":1e3'),
    "size-string": cfg(b'"Size":"3"'),
    "size-overflow": cfg(b'"Size":9223372036854775808'),
    "size-max": cfg(b'"Size":9223372036854775807'),
    "size-negative-zero": cfg(b'"Size":-0'),
    "stoptimeout-float": cfg(b'"config":{"StopTimeout":1.0}'),
    "retries-string": cfg(b'"config":{"Healthcheck":{"Retries":"3"}}'),
    "interval-float": cfg(b'"config":{"Healthcheck":{"Interval":1e9}}'),
    "start-interval-wrong-type": cfg(b'"config":{"Healthcheck":{"StartInterval":"soon"}}'),
    "bool-as-number": cfg(b'"config":{"Tty":1}'),
    "string-as-number": cfg(b'"os":1'),
    "volumes-value-number": cfg(b'"config":{"Volumes":{"/a":1}}'),
    "env-element-number": cfg(b'"config":{"Env":["a",1]}'),
    "config-array": cfg(b'"config":[]'),
    "diff-ids-null-element": b'{"rootfs":{"type":"layers","diff_ids":["' + DIFF.encode()
    + b'",null]}}',
    "os-features": cfg(b'"os.version":"10.0.17763.1","OS.FEATURES":["win32k"]'),
    "variant": cfg(b'"architecture":"arm","variant":"v7"'),
    "pretty-printed": b'{\n  "rootfs": {"type": "layers", "diff_ids": ["' + DIFF.encode()
    + b'"]},\n  "os": "linux", "architecture": "amd64",\n  "config": {"Labels": {"z": "last",'
    b' "a": "first"}, "Env": ["A=1"], "Cmd": ["/x"]}\n}\n',
}


def image_cases(rnd: random.Random) -> list[tuple[str, bytes]]:
    cases = list(IMAGE_NAMED.items())
    gen = _ConfigGenerator(rnd)
    cases += [(f"random-{i}", gen.image()) for i in range(200)]
    return cases


class _ConfigGenerator:
    """Random configs: case variants, duplicates, nulls, odd strings, rare bad values."""

    PIECES = ("a", "b", "\xe9", "\u65e5\u672c", "\U0001f600", "<", ">", "&", "\u2028",
              "\u2029", '"', "\\", "\x00", "\x01", "\x08", "\x0c", "\n", "\t", "\x7f", "/",
              " ", "x=y", "K", "s", "\ufffd")
    RAW_BAD = (b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
    SURROGATES = ("\\ud800", "\\udc00", "\\ud83d\\ude00", "\\ud83d", "\\ud800\\u0041")
    BAD = 0.02

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.health = {"Test": lambda: self.list(self.string), "Interval": self.int,
                       "Timeout": self.int, "StartPeriod": self.int,
                       "StartInterval": self.int, "Retries": self.int}
        self.config = {
            "Hostname": self.string, "Domainname": self.string, "User": self.string,
            "AttachStdin": self.bool, "AttachStdout": self.bool, "AttachStderr": self.bool,
            "ExposedPorts": lambda: self.map(self.empty), "Tty": self.bool,
            "OpenStdin": self.bool, "StdinOnce": self.bool,
            "Env": lambda: self.list(self.string), "Cmd": self.strslice,
            "Healthcheck": lambda: self.object(self.health), "ArgsEscaped": self.bool,
            "Image": self.string, "Volumes": lambda: self.map(self.empty),
            "WorkingDir": self.string, "Entrypoint": self.strslice,
            "NetworkDisabled": self.bool, "MacAddress": self.string,
            "OnBuild": lambda: self.list(self.string), "Labels": lambda: self.map(self.string),
            "StopSignal": self.string, "StopTimeout": self.int, "Shell": self.strslice,
        }
        self.history = {"created": self.time, "author": self.string,
                        "created_by": self.string, "comment": self.string,
                        "empty_layer": self.bool}
        self.top = {
            "id": self.string, "parent": self.string, "comment": self.string,
            "created": self.time, "container": self.string,
            "container_config": lambda: self.object(self.config), "docker_version": self.string,
            "author": self.string, "config": lambda: self.object(self.config),
            "architecture": self.string, "variant": self.string, "os": self.string,
            "Size": self.int, "history": lambda: self.list(lambda: self.object(self.history)),
            "os.version": self.string, "os.features": lambda: self.list(self.string),
        }

    def key(self, name: str) -> str:
        options = [name] * 3 + [name.lower(), name.upper(), name.swapcase()]
        if "k" in name.lower():
            options.append(name.replace("k", "\u212a").replace("K", "\u212a"))
        if "s" in name.lower():
            options.append(name.replace("s", "\u017f").replace("S", "\u017f"))
        return self.quote(self.rnd.choice(options))

    def quote(self, text: str) -> str:
        rnd = self.rnd
        out = ['"']
        for ch in text:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ord(ch) < 0x20:
                short = {"\n": "\\n", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\r": "\\r"}
                escaped = f"\\u{ord(ch):04x}"
                out.append(short.get(ch, escaped) if rnd.random() < 0.3 else escaped)
            elif rnd.random() < 0.05 and ord(ch) < 0x10000:
                out.append(f"\\u{ord(ch):04X}")
            else:
                out.append(ch)
        return "".join(out) + '"'

    def string(self) -> bytes:
        rnd = self.rnd
        text = self.quote("".join(rnd.choice(self.PIECES) for _ in range(rnd.randint(0, 4))))
        if rnd.random() < 0.15:
            text = text[:1] + rnd.choice(self.SURROGATES) + text[1:]
        data = text.encode()
        if rnd.random() < 0.1:
            data = data[:-1] + rnd.choice(self.RAW_BAD) + b'"'
        return data

    def int(self) -> bytes:
        rnd = self.rnd
        if rnd.random() < self.BAD:
            return rnd.choice([b"9223372036854775808", b"1.0", b"1e3", b'"3"', b"true"])
        return rnd.choice([b"0", b"1", b"-1", b"5000000000", b"9223372036854775807",
                           b"-9223372036854775808", b"-0", b"null",
                           str(rnd.randint(-10**6, 10**6)).encode()])

    def bool(self) -> bytes:
        if self.rnd.random() < self.BAD:
            return self.rnd.choice([b"0", b'"true"'])
        return self.rnd.choice([b"true", b"false", b"null"])

    def time(self) -> bytes:
        rnd = self.rnd
        if rnd.random() < self.BAD:
            return rnd.choice([b'"2019-02-29T00:00:00Z"', b'"2019-06-07T08:09:10"', b"1560000000"])
        return b'"' + rnd.choice(TIME_NAMED[:30]).encode() + b'"' if rnd.random() < 0.9 else b"null"

    def list(self, element, null_elements: bool = True) -> bytes:
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.15:
            return b"null"
        if roll < 0.25:
            return b"[]"
        items = [b"null" if null_elements and rnd.random() < 0.2 else element()
                 for _ in range(rnd.randint(1, 6))]
        return b"[" + b",".join(items) + b"]"

    def strslice(self) -> bytes:
        roll = self.rnd.random()
        if roll < 0.2:
            return self.string()
        if roll < 0.2 + self.BAD:
            return self.rnd.choice([b"5", b"{}", b"[1]", b"true"])
        return self.list(self.string)

    def map(self, element) -> bytes:
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.15:
            return b"null"
        if roll < 0.25:
            return b"{}"
        keys = [self.string() for _ in range(rnd.randint(1, 4))]
        pairs = [rnd.choice(keys) + b":" + element() for _ in range(rnd.randint(1, 5))]
        return b"{" + b",".join(pairs) + b"}"

    def empty(self) -> bytes:
        if self.rnd.random() < self.BAD:
            return self.rnd.choice([b"1", b"[]"])
        return self.rnd.choice([b"{}", b'{"a":1}', b"null"])

    def object(self, fields, duplicates: float = 0.3) -> bytes:
        rnd = self.rnd
        if rnd.random() < 0.05:
            return b"null"
        pairs = []
        for name in rnd.sample(list(fields), rnd.randint(0, len(fields))):
            pairs.append(self.key(name).encode() + b":" + fields[name]())
            if rnd.random() < duplicates:
                pairs.append(self.key(name).encode() + b":" + fields[name]())
        if rnd.random() < 0.2:
            pairs.append(b'"zzz-unknown":' + rnd.choice([b'{"deep":[1,{"x":null}]}', b"1.5"]))
        rnd.shuffle(pairs)
        return b"{" + b",".join(pairs) + b"}"

    def image(self) -> bytes:
        body = self.object(self.top, duplicates=0.25)
        if body in (b"null", b"{}"):
            return b"{" + ROOTFS + b"}"
        return b"{" + ROOTFS + b"," + body[1:]


def main() -> None:
    rnd = random.Random(20101924)
    write("syntax.jsonl", syntax_cases(rnd), "syntax")
    write("times.jsonl", time_cases(rnd), "time")
    write("images.jsonl", image_cases(rnd), "image")


if __name__ == "__main__":
    main()
